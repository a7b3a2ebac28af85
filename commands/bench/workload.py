"""The request stream both engine benchmarks serve: fixed prompt and output lengths, distinct random prompts
(so no prefix cache makes prefill free), and adapters assigned round-robin, so consecutive requests never
share an adapter when several are mixed."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Stream:
    adapters: int
    """Distinct adapters mixed in the stream; 0 means the base model only."""
    concurrency: int
    requests: int
    prompt_tokens: int
    output_tokens: int

    @property
    def label(self) -> str:
        return "base" if self.adapters == 0 else f"{self.adapters} adapter{'s' if self.adapters > 1 else ''}"

    def adapter_of(self, request: int) -> int | None:
        return request % self.adapters if self.adapters else None

    def prompts(self, vocab_size: int, seed: int = 0) -> list[list[int]]:
        rng = random.Random(seed)
        # Ids from the middle of the vocabulary: ordinary tokens, away from the special ones at the start.
        low = min(1000, vocab_size // 4)
        return [
            [rng.randrange(low, vocab_size) for _ in range(self.prompt_tokens)] for _ in range(self.requests)
        ]


def grid(
    adapter_counts: list[int],
    concurrencies: list[int],
    *,
    prompt_tokens: int,
    output_tokens: int,
    waves: int,
) -> list[Stream]:
    """Every (adapters, concurrency) pair; each run sends ``waves`` × concurrency requests (at least 8)."""
    return [
        Stream(n, c, max(8, waves * c), prompt_tokens, output_tokens)
        for n in adapter_counts
        for c in concurrencies
    ]
