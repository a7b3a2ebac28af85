"""`lora-router bench` commands that measure the engine alone and the hot-swap baseline: engine, lora-ops,
hotswap, compare."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from commands.bench.options import (
    AdapterCounts,
    BaseModelDir,
    ConcurrencyList,
    JsonOut,
    OutputTokens,
    PromptTokens,
    RandomAdaptersDir,
    RandomRank,
    Waves,
)
from commands.bench.stats import environment, print_rows, report_result, write_json
from commands.common import int_list, make_settings, progress_bar, quiet_transformers, resolve_base_model


def _bench_adapters(base: Path, adapters_dir: Path | None, count: int, rank: int) -> list[Path]:
    """Adapter folders under ``adapters_dir``, or ``count`` random ones made for ``base`` (kept for reuse)."""
    from commands.bench.fixtures import adapter_folders, make_lora_adapters

    if adapters_dir is not None:
        try:
            return adapter_folders(adapters_dir, count)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--adapters-dir") from None
    target = make_settings().data_dir / "bench" / "adapters" / f"{base.name}-r{rank}"
    with progress_bar() as progress:
        progress.add_task(f"making {count} random rank-{rank} adapters for {base.name}", total=None)
        return make_lora_adapters(base, target, count, rank=rank)


def _adapter_rank(folders: list[Path]) -> int:
    import json

    return max(json.loads((f / "adapter_config.json").read_text())["r"] for f in folders)


def _vocab_size(base: Path) -> int:
    import json

    return json.loads((base / "config.json").read_text())["vocab_size"]


def bench_engine(
    base_model_dir: BaseModelDir = None,
    adapters_dir: RandomAdaptersDir = None,
    adapter_counts: AdapterCounts = "0,1,2,4,8,16",
    concurrency: ConcurrencyList = "1,8,64",
    prompt_tokens: PromptTokens = 128,
    output_tokens: OutputTokens = 128,
    waves: Waves = 4,
    rank: RandomRank = 16,
    kv_cache_gib: Annotated[int, typer.Option(help="KV cache on the CPU engine, GiB.", min=1)] = 2,
    gpu_memory_utilization: Annotated[float, typer.Option(help="Share of GPU memory (CUDA).")] = 0.85,
    dtype: Annotated[
        str, typer.Option(help="auto, bfloat16, float16 or float32 (as LORA_ROUTER_DTYPE).")
    ] = "auto",
    cpu_lora_ops: Annotated[
        str, typer.Option(help="batched or vllm (as LORA_ROUTER_CPU_LORA_OPS).")
    ] = "batched",
    out: JsonOut = None,
) -> None:
    """Scenario 1, the engine alone: output tokens/s and latency for the base model, one adapter and N
    adapters mixed in one stream, at each concurrency (vLLM batches different adapters together)."""
    import asyncio
    from dataclasses import asdict

    import pydantic

    from commands.bench.engine import cold_adapter, relative_to_single_adapter, run_engine_bench
    from commands.bench.fixtures import describe_model, lora_rank_limit
    from commands.bench.workload import grid
    from router.engine import AdapterRef
    from router.engine.vllm_engine import VllmEngine, engine_setup

    base = resolve_base_model(base_model_dir, "--base-model-dir")
    counts = int_list(adapter_counts, "--adapter-counts")
    concurrencies = int_list(concurrency, "--concurrency", minimum=1)
    folders = _bench_adapters(base, adapters_dir, max(counts), rank)
    adapters = [AdapterRef(name=f.name, id=i + 1, path=f) for i, f in enumerate(folders)]
    streams = grid(
        counts, concurrencies, prompt_tokens=prompt_tokens, output_tokens=output_tokens, waves=waves
    )
    try:
        settings = make_settings(
            base_model_path=base,
            base_model_name=base.name,
            max_loras=max(1, *counts),
            max_cpu_loras=max(1, *counts),
            max_lora_rank=lora_rank_limit(folders) if folders else 16,
            max_model_len=max(128, prompt_tokens + output_tokens + 16),
            kv_cache_gib=kv_cache_gib,
            gpu_memory_utilization=gpu_memory_utilization,
            dtype=dtype,
            cpu_lora_ops=cpu_lora_ops,
        )
    except pydantic.ValidationError as error:
        raise typer.BadParameter(str(error)) from None
    setup = engine_setup(settings)

    async def measure() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        engine = VllmEngine.from_settings(settings, setup)
        try:
            with progress_bar() as progress:
                task = progress.add_task("engine: warm-up, then each stream", total=len(streams) + 1)
                rows = await run_engine_bench(
                    engine, streams, adapters, _vocab_size(base), on_done=lambda _: progress.advance(task)
                )
                prompt = streams[0].prompts(_vocab_size(base))[0]
                cold = await cold_adapter(engine, folders[0], prompt, first_id=len(adapters) + 1)
                progress.advance(task)
                return rows, cold
        finally:
            engine.shutdown()

    rows, cold = asyncio.run(measure())
    relative_to_single_adapter(rows)
    result = {
        "scenario": "engine",
        "model": describe_model(base),
        "engine_setup": asdict(setup),
        "adapter_rank": _adapter_rank(folders) if folders else None,
        "prompt_tokens": prompt_tokens,
        "output_tokens": output_tokens,
        "environment": environment(),
        "rows": rows,
        "cold_adapter": cold,
    }
    typer.echo(
        "cold adapter: first request TTFT p50 {:.1f} ms, warm {:.1f} ms".format(
            cold["first_request_ttft"]["p50_ms"], cold["warm_ttft"]["p50_ms"]
        )
    )
    report_result(
        result,
        out,
        f"engine: {base.name} in {setup.dtype}, {setup.lora_ops} LoRA ops, prompt {prompt_tokens} / output "
        f"{output_tokens} tokens",
        rows,
        {
            "adapters": "adapters",
            "concurrency": "concurrency",
            "requests": "requests",
            "output_tokens_per_s": "tok/s",
            "vs_one_adapter": "vs 1 adapter",
            "latency.p50_ms": "latency p50 ms",
            "latency.p99_ms": "p99 ms",
            "ttft.p50_ms": "TTFT p50 ms",
        },
    )


def bench_lora_ops(
    base_model_dir: BaseModelDir = None,
    rank: Annotated[int, typer.Option(help="LoRA rank (the engine's max_lora_rank).")] = 16,
    adapters: Annotated[int, typer.Option(help="Adapters mixed in the batch-16 cases.")] = 4,
    dtypes: Annotated[str, typer.Option(help="Comma-separated: float32, bfloat16.")] = "float32,bfloat16",
    repeats: Annotated[int, typer.Option(help="Timed steps per case (the median is reported).")] = 5,
    threads: Annotated[
        int, typer.Option(help="Torch threads (vLLM's CPU worker gets the cores minus one: 1 on 2 cores).")
    ] = 1,
    out: JsonOut = None,
) -> None:
    """vLLM's CPU LoRA ops against the batched ones, alone: one engine step's LoRA work on the model's
    layer shapes, for decode at batch 1 and 16 and 30-token prefills."""
    import torch

    torch.set_num_threads(threads)
    from commands.bench.lora_ops import run_lora_ops_bench

    base = resolve_base_model(base_model_dir, "--base-model-dir")
    try:
        torch_dtypes = [getattr(torch, name) for name in dtypes.split(",") if name.strip()]
    except AttributeError as error:
        raise typer.BadParameter(str(error), param_hint="--dtypes") from None
    with progress_bar() as progress:
        task = progress.add_task("LoRA ops: each case, vLLM's then batched", total=len(torch_dtypes) * 5)
        rows = run_lora_ops_bench(
            base,
            rank=rank,
            adapters=adapters,
            dtypes=torch_dtypes,
            repeats=repeats,
            on_done=lambda _: progress.advance(task),
        )
    result = {
        "scenario": "lora-ops",
        "model": base.name,
        "rank": rank,
        "torch_threads": torch.get_num_threads(),
        "environment": environment(),
        "rows": rows,
    }
    report_result(
        result,
        out,
        f"LoRA ops per engine step: {base.name}, rank {rank}, {torch.get_num_threads()} torch threads",
        rows,
        {
            "case": "case",
            "dtype": "dtype",
            "tokens": "tokens",
            "vllm_ms": "vLLM ops ms",
            "batched_ms": "batched ms",
            "speedup": "speed-up",
        },
    )


def bench_hotswap(
    base_model_dir: BaseModelDir = None,
    adapters_dir: RandomAdaptersDir = None,
    adapter_counts: AdapterCounts = "0,1,16",
    concurrency: ConcurrencyList = "64",
    prompt_tokens: PromptTokens = 128,
    output_tokens: OutputTokens = 128,
    waves: Waves = 1,
    rank: RandomRank = 16,
    device: Annotated[str | None, typer.Option(help="cuda or cpu (default: cuda when there is one).")] = None,
    dtype: Annotated[
        str | None, typer.Option(help="Weights (default: bfloat16 on cuda, float32 on cpu).")
    ] = None,
    out: JsonOut = None,
) -> None:
    """Scenario 2, the naive baseline: the same stream on transformers + PEFT, `set_adapter` per request,
    batching only runs of consecutive requests on one adapter."""
    import torch

    from commands.bench.fixtures import describe_model
    from commands.bench.hotswap import load_model, run_hotswap_bench
    from commands.bench.workload import grid

    quiet_transformers()
    base = resolve_base_model(base_model_dir, "--base-model-dir")
    counts = int_list(adapter_counts, "--adapter-counts")
    concurrencies = int_list(concurrency, "--concurrency", minimum=1)
    folders = _bench_adapters(base, adapters_dir, max(1, *counts), rank)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype or ("bfloat16" if device == "cuda" else "float32")
    streams = grid(
        counts, concurrencies, prompt_tokens=prompt_tokens, output_tokens=output_tokens, waves=waves
    )
    model = load_model(base, folders, device, dtype)
    with progress_bar() as progress:
        task = progress.add_task("hot-swap: warm-up, then each stream", total=len(streams))
        rows = run_hotswap_bench(model, streams, _vocab_size(base), on_done=lambda _: progress.advance(task))
    result = {
        "scenario": "hotswap",
        "model": describe_model(base),
        "device": device,
        "dtype": dtype,
        "prompt_tokens": prompt_tokens,
        "output_tokens": output_tokens,
        "environment": environment(),
        "rows": rows,
    }
    report_result(
        result,
        out,
        f"hot-swap (transformers + PEFT, {device}): {base.name}",
        rows,
        {
            "adapters": "adapters",
            "concurrency": "max batch",
            "requests": "requests",
            "batches": "batches",
            "output_tokens_per_s": "tok/s",
            "completion.p50_ms": "done p50 ms",
        },
    )


def bench_compare(
    engine_json: Annotated[Path, typer.Argument(help="`bench engine` result.", exists=True)],
    hotswap_json: Annotated[
        list[Path] | None,
        typer.Argument(help="`bench hotswap` results on the same stream (rows joined).", exists=True),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the comparison as JSON here.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write the plot as PNG here.")] = None,
) -> None:
    """Throughput of vLLM multi-LoRA against the hot-swap baseline on the same stream, and the plot."""
    import json

    from commands.bench.plot import compare, save_plot

    engine = json.loads(engine_json.read_text())
    parts = [json.loads(path.read_text()) for path in hotswap_json or []]
    hotswap = {**parts[0], "rows": [row for part in parts for row in part["rows"]]} if parts else None
    rows = compare(engine, hotswap) if hotswap else []
    if rows:
        print_rows(
            "vLLM multi-LoRA vs hot-swap",
            rows,
            {
                "adapters": "adapters",
                "concurrency": "concurrency",
                "vllm_tokens_per_s": "vLLM tok/s",
                "hotswap_tokens_per_s": "hot-swap tok/s",
                "vllm_over_hotswap": "ratio",
            },
        )
    if out:
        names = {"engine": engine_json.name, "hotswap": [path.name for path in hotswap_json or []]}
        write_json(out, {**names, "rows": rows})
    if plot:
        gpu = engine["environment"].get("gpu") or f"CPU ({engine['environment']['cpus']} cores)"
        model = engine["model"]
        title = (
            f"{model['path']} ({model['parameters'] / 1e6:.0f}M params) on {gpu}: "
            f"prompt {engine['prompt_tokens']}, output {engine['output_tokens']} tokens"
        )
        save_plot(engine, hotswap, plot, title)
        typer.echo(f"wrote {plot}")
