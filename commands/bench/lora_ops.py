"""The CPU LoRA ops alone: vLLM's CPU punica wrapper against the batched one (``cpu_lora_ops``), timing one
engine step's worth of LoRA work on a model's real layer shapes: every decoder layer's q/k/v (one packed
layer, three slices), o, gate/up (two slices) and down projections, as vLLM's LoRA layers call
``add_lora_linear``. The metadata comes from vLLM's own ``update_metadata`` with ``is_prefill=True``, which is
what its v1 model runner always passes on the CPU (so vLLM's sgmv path runs for decode steps too)."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from vllm.lora.layers import LoRAMapping
from vllm.lora.punica_wrapper.punica_cpu import PunicaWrapperCPU

from router.engine.cpu_lora_ops import BatchedPunicaWrapperCPU

BASE = 0


@dataclass(frozen=True)
class Case:
    name: str
    requests: list[tuple[int, int]]
    """(adapter id, or 0 for the base model; tokens this step) per request, in batch order."""


def default_cases(adapters: int) -> list[Case]:
    mixed = [1 + i % adapters for i in range(16)]
    return [
        Case("decode, batch 1", [(1, 1)]),
        Case(f"decode, batch 16 over {adapters} adapters", [(a, 1) for a in mixed]),
        Case(
            f"decode, batch 16 over {adapters} adapters + base",
            [(a if i % 4 else BASE, 1) for i, a in enumerate(mixed)],
        ),
        Case("prefill, one 30-token prompt", [(1, 30)]),
        Case(f"prefill, 16 x 30 tokens over {adapters} adapters", [(a, 30) for a in mixed]),
    ]


def layer_slices(config: dict[str, Any]) -> list[tuple[int, tuple[int, ...]]]:
    """(input features, output slices) of each LoRA linear layer of one decoder layer (Llama-shaped)."""
    hidden, head_dim = (
        config["hidden_size"],
        config.get("head_dim") or (config["hidden_size"] // config["num_attention_heads"]),
    )
    q = config["num_attention_heads"] * head_dim
    kv = config["num_key_value_heads"] * head_dim
    inter = config["intermediate_size"]
    return [(hidden, (q, kv, kv)), (q, (hidden,)), (hidden, (inter, inter)), (inter, (hidden,))]


def _weights(
    layers: list[tuple[int, tuple[int, ...]]], slots: int, rank: int, dtype: torch.dtype
) -> list[tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]]:
    generator = torch.Generator().manual_seed(0)

    def randn(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=generator) * 0.05).to(dtype)

    return [
        (
            tuple(randn(slots, 1, rank, inp) for _ in slices),
            tuple(randn(slots, 1, out, rank) for out in slices),
        )
        for inp, slices in layers
    ]


def time_step(
    wrapper: PunicaWrapperCPU,
    layers: list[tuple[int, tuple[int, ...]]],
    weights: list[tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]],
    tokens: int,
    num_layers: int,
    dtype: torch.dtype,
    repeats: int,
) -> list[float]:
    """Seconds per step (``num_layers`` decoder layers) for ``repeats`` steps, after an unmeasured one."""
    xs = [torch.randn(tokens, inp).to(dtype) for inp, _ in layers]
    ys = [torch.zeros(tokens, sum(slices), dtype=dtype) for _, slices in layers]
    seconds = []
    for step in range(repeats + 1):
        started = time.perf_counter()
        for _ in range(num_layers):
            for (_, slices), (a, b), x, y in zip(layers, weights, xs, ys, strict=True):
                wrapper.add_lora_linear(y, x, a, b, 1.0, slices)
        if step:
            seconds.append(time.perf_counter() - started)
    return seconds


def run_lora_ops_bench(
    base_model_dir: Path,
    *,
    rank: int,
    adapters: int,
    dtypes: list[torch.dtype],
    repeats: int,
    on_done: Callable[[dict[str, Any]], None] = lambda _: None,
) -> list[dict[str, Any]]:
    config = json.loads((base_model_dir / "config.json").read_text())
    layers = layer_slices(config)
    num_layers = config["num_hidden_layers"]
    slots = adapters + 1  # a spare slot, as vLLM's reference reads slot -1 for base-model rows
    slot_ids: list[int | None] = [*range(1, adapters + 1), None]
    rows = []
    for dtype in dtypes:
        weights = _weights(layers, slots, rank, dtype)
        for case in default_cases(adapters):
            tokens = [a for a, n in case.requests for _ in range(n)]
            mapping = LoRAMapping(tuple(tokens), tuple(a for a, _ in case.requests), is_prefill=True)
            row: dict[str, Any] = {
                "case": case.name,
                "dtype": str(dtype).removeprefix("torch."),
                "tokens": len(tokens),
            }
            for label, cls in (("vllm", PunicaWrapperCPU), ("batched", BatchedPunicaWrapperCPU)):
                wrapper = cls(max_num_batched_tokens=max(len(tokens), 8), max_batches=64, device="cpu")
                wrapper.update_metadata(mapping, slot_ids, slots + 1, config["vocab_size"])
                seconds = time_step(wrapper, layers, weights, len(tokens), num_layers, dtype, repeats)
                row[f"{label}_ms"] = round(statistics.median(seconds) * 1000, 3)
            row["speedup"] = round(row["vllm_ms"] / row["batched_ms"], 2)
            rows.append(row)
            on_done(row)
    return rows
