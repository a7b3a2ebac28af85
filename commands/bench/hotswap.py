"""Scenario 2: the naive baseline. The same request stream served by transformers + PEFT the way a
per-request hot-swap demo does it: ``set_adapter`` before each request, and a batch only for a run of
consecutive requests on the same adapter (at most ``concurrency`` of them). In a mixed stream such runs are
one request long, so every request decodes alone."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from commands.bench.stats import summary_ms
from commands.bench.workload import Stream


def load_model(base_model_dir: Path, adapter_dirs: list[Path], device: str, dtype: str) -> Any:  # PeftModel
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(base_model_dir), dtype=getattr(torch, dtype))
    model = PeftModel.from_pretrained(base.to(device), str(adapter_dirs[0]), adapter_name="a0")
    for i, folder in enumerate(adapter_dirs[1:], start=1):
        model.load_adapter(str(folder), adapter_name=f"a{i}")
    return model.eval()


def runs(stream: Stream) -> list[tuple[int | None, list[int]]]:
    """Consecutive requests on the same adapter, up to ``concurrency`` per batch, in arrival order."""
    batches: list[tuple[int | None, list[int]]] = []
    for i in range(stream.requests):
        adapter = stream.adapter_of(i)
        if batches and batches[-1][0] == adapter and len(batches[-1][1]) < stream.concurrency:
            batches[-1][1].append(i)
        else:
            batches.append((adapter, [i]))
    return batches


def _generate(model: Any, prompts: list[list[int]], adapter: int | None, output_tokens: int) -> int:
    import torch

    device = next(model.parameters()).device
    ids = torch.tensor(prompts, device=device)
    if adapter is not None:
        model.set_adapter(f"a{adapter}")
    with torch.inference_mode(), model.disable_adapter() if adapter is None else nullcontext():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=output_tokens,
            min_new_tokens=output_tokens,
            do_sample=False,
            pad_token_id=0,
        )
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (out.shape[1] - ids.shape[1]) * ids.shape[0]


def run_stream(model: Any, stream: Stream, vocab_size: int) -> dict[str, Any]:
    prompts = stream.prompts(vocab_size)
    batches = runs(stream)
    started = time.perf_counter()
    done: list[float] = []
    tokens = 0
    for adapter, indices in batches:
        tokens += _generate(model, [prompts[i] for i in indices], adapter, stream.output_tokens)
        done += [time.perf_counter() - started] * len(indices)
    wall = time.perf_counter() - started
    return {
        "adapters": stream.adapters,
        "concurrency": stream.concurrency,
        "requests": stream.requests,
        "batches": len(batches),
        "output_tokens": tokens,
        "wall_s": round(wall, 3),
        "output_tokens_per_s": round(tokens / wall, 1),
        # Every request is there at the start; it is done when its batch is.
        "completion": summary_ms(done),
    }


def run_hotswap_bench(
    model: Any,
    streams: list[Stream],
    vocab_size: int,
    on_done: Callable[[dict[str, Any]], None] = lambda _: None,
) -> list[dict[str, Any]]:
    needed = max(s.adapters for s in streams)
    prompt = streams[0].prompts(vocab_size)[0]
    for adapter in [None, *range(needed)]:  # first-use costs (kernels, caches) stay out of the timing
        _generate(model, [prompt], adapter, 2)
    rows = []
    for stream in streams:
        row = run_stream(model, stream, vocab_size)
        rows.append(row)
        on_done(row)
    return rows
