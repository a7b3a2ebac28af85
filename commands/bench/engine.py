"""Scenario 1: the engine alone. Output tokens/s and per-request latency for the base model, one adapter, and
several adapters mixed in one stream, at several concurrencies; vLLM batches requests of different adapters
together, which is what this measures."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from commands.bench.stats import summary_ms
from commands.bench.workload import Stream
from router.engine.base import AdapterRef, Engine, SamplingOptions


async def _one(
    engine: Engine, prompt: list[int], adapter: AdapterRef | None, output_tokens: int
) -> tuple[float, float, int]:
    """(latency, time to first token, tokens) of one greedy request that runs to ``output_tokens``."""
    sampling = SamplingOptions(max_tokens=output_tokens, temperature=0.0, ignore_eos=True)
    started = time.perf_counter()
    first: float | None = None
    tokens = 0
    async for step in engine.generate(f"bench-{uuid.uuid4().hex}", prompt, sampling, adapter):
        produced = sum(d.num_tokens for d in step.deltas)
        if produced and first is None:
            first = time.perf_counter()
        tokens += produced
    ended = time.perf_counter()
    return ended - started, (first or ended) - started, tokens


async def warm_up(engine: Engine, adapters: list[AdapterRef], prompt: list[int]) -> None:
    """Load every adapter into the engine (and compile what runs on first use) before anything is timed:
    a cold adapter's first request is scenario 5's subject, not this one's."""
    await asyncio.gather(*(_one(engine, prompt, a, 2) for a in [None, *adapters]))


async def run_stream(
    engine: Engine, stream: Stream, adapters: list[AdapterRef], vocab_size: int
) -> dict[str, Any]:
    prompts = stream.prompts(vocab_size)
    slots = asyncio.Semaphore(stream.concurrency)

    async def request(i: int) -> tuple[float, float, int]:
        index = stream.adapter_of(i)
        async with slots:
            return await _one(
                engine, prompts[i], None if index is None else adapters[index], stream.output_tokens
            )

    started = time.perf_counter()
    results = await asyncio.gather(*(request(i) for i in range(stream.requests)))
    wall = time.perf_counter() - started
    tokens = sum(r[2] for r in results)
    if tokens != stream.requests * stream.output_tokens:
        raise RuntimeError(f"expected {stream.requests * stream.output_tokens} tokens, got {tokens}")
    return {
        "adapters": stream.adapters,
        "concurrency": stream.concurrency,
        "requests": stream.requests,
        "output_tokens": tokens,
        "wall_s": round(wall, 3),
        "output_tokens_per_s": round(tokens / wall, 1),
        "latency": summary_ms([r[0] for r in results]),
        "ttft": summary_ms([r[1] for r in results]),
    }


async def run_engine_bench(
    engine: Engine,
    streams: list[Stream],
    adapters: list[AdapterRef],
    vocab_size: int,
    on_done: Callable[[dict[str, Any]], None] = lambda _: None,
) -> list[dict[str, Any]]:
    needed = max(s.adapters for s in streams)
    if needed > len(adapters):
        raise ValueError(f"the streams mix up to {needed} adapters; {len(adapters)} given")
    await warm_up(engine, adapters[:needed], streams[0].prompts(vocab_size)[0])
    rows = []
    for stream in streams:
        row = await run_stream(engine, stream, adapters, vocab_size)
        rows.append(row)
        on_done(row)
    return rows


async def cold_adapter(
    engine: Engine, folder: Path, prompt: list[int], *, first_id: int, rounds: int = 3, warm: int = 3
) -> dict[str, Any]:
    """Scenario 5 at the engine: an adapter id the engine has never seen (vLLM caches weights by id, so a
    new registration is exactly this) pays for loading its weights in its first request; later ones don't."""
    cold, warm_ttft = [], []
    for i in range(rounds):
        adapter = AdapterRef(name=f"cold-{first_id + i}", id=first_id + i, path=folder)
        cold.append((await _one(engine, prompt, adapter, 1))[1])
        for _ in range(warm):
            warm_ttft.append((await _one(engine, prompt, adapter, 1))[1])
    first, later = summary_ms(cold), summary_ms(warm_ttft)
    ratio = round(first["p50_ms"] / later["p50_ms"], 2) if later["p50_ms"] else None
    result = {"first_request_ttft": first, "warm_ttft": later, "cold_over_warm_p50": ratio}
    return result


def relative_to_single_adapter(rows: list[dict[str, Any]]) -> None:
    """Add each row's throughput as a share of the one-adapter stream's at the same concurrency."""
    single = {r["concurrency"]: r["output_tokens_per_s"] for r in rows if r["adapters"] == 1}
    for row in rows:
        if row["concurrency"] in single:
            row["vs_one_adapter"] = round(row["output_tokens_per_s"] / single[row["concurrency"]], 3)
