"""`lora-router bench` commands that drive a service: overload, an adapter's cold start, the service against
plain vLLM, engine replicas."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypedDict, TypeVar, Unpack

import typer

from commands.bench.options import (
    BaseModelDir,
    Concurrency,
    ConcurrencyList,
    GpuShare,
    InputLen,
    JsonOut,
    NumPrompts,
    OutputLen,
    ServedAdapters,
    ServedAdaptersDir,
    ServiceUrl,
)
from commands.bench.stats import report_result
from commands.common import ApiKey, int_list, make_settings, progress_bar, resolve_base_model, service_models

if TYPE_CHECKING:
    from commands.bench.serve import Api, ServeBench

R = TypeVar("R")


def bench_load(
    url: ServiceUrl = "http://127.0.0.1:8000",
    clients: Annotated[
        int | None, typer.Option(help="Concurrent streaming clients (default: 4x the admission limit).")
    ] = None,
    duration: Annotated[float, typer.Option(help="Seconds of traffic.")] = 60.0,
    adapters: Annotated[int, typer.Option(help="Adapters in the mix, besides the base model.")] = 4,
    max_tokens: Annotated[int, typer.Option(help="Tokens each answer is made to have.")] = 32,
    pid: Annotated[
        int | None, typer.Option(help="The service's process id, to sample its memory (engine included).")
    ] = None,
    out: JsonOut = None,
    api_key: ApiKey = None,
) -> None:
    """Overload the service: more streaming clients than it admits, over several adapters and the base
    model. Reports accepted, 429s, errors (5xx apart), latency of accepted requests and peak memory."""
    import asyncio
    import json

    from commands.bench.load import run_load
    from commands.client import service_client

    with service_client(url, api_key) as client:
        limit = client.get("/health").json()["admission_limit"]
    base, adapter_names = service_models(url, api_key)
    models = [*adapter_names[:adapters], base]
    clients = clients or 4 * limit
    with progress_bar() as progress:
        task = progress.add_task(f"{clients} clients over {len(models)} models", total=duration)
        result = asyncio.run(
            run_load(
                url,
                models,
                clients=clients,
                duration_s=duration,
                max_tokens=max_tokens,
                pid=pid,
                api_key=api_key,
                on_tick=lambda elapsed: progress.update(task, completed=min(elapsed, duration)),
            )
        )

    rows = [
        ("accepted (per s)", f"{result['accepted']} ({result['accepted_per_s']}/s)"),
        ("refused with 429", str(result["refused_429"])),
        ("5xx errors", str(result["server_errors_5xx"])),
        ("other errors", json.dumps(result["errors"]) if result["errors"] else "0"),
    ]
    for label, key in (("latency of accepted", "latency"), ("time to first token", "ttft")):
        if timing := result[key]:
            rows.append((f"{label} p50 / p99 ms", f"{timing['p50_ms']:.0f} / {timing['p99_ms']:.0f}"))
    if rss := result["rss_mib"]:
        rows.append(("service memory MiB start / peak / end", "{start} / {peak} / {end}".format(**rss)))
    title = f"load: {clients} clients, admission limit {limit}, {result['duration_s']} s"
    report_result(result, out, title, rows, ("measure", "value"), justify="left", wide=False)


class _Workload(TypedDict, total=False):
    """The ServeBench fields a command sets from its options; the others keep their defaults."""

    num_prompts: int
    concurrency: int
    input_len: int
    output_len: int
    max_model_len: int
    kv_cache_gib: int
    gpu_memory_utilization: float
    api: Api
    repeats: int
    max_num_seqs: int | None
    max_num_batched_tokens: int | None
    profile_dir: Path | None


def _with_servers(name: str, steps: int, run: Callable[[Path, Callable[[str], None]], R]) -> R:
    """``run`` (a benchmark that starts servers) in a scratch folder, its steps on a progress bar; a server
    that fails to start or a client run that fails ends the command with the reason."""
    import tempfile

    with progress_bar() as progress, tempfile.TemporaryDirectory(prefix=f"lora-router-bench-{name}-") as work:
        task = progress.add_task("starting", total=steps)
        phase = iter(range(steps))
        try:
            result = run(
                Path(work), lambda what: progress.update(task, description=what, completed=next(phase))
            )
        except (RuntimeError, TimeoutError) as error:
            progress.stop()
            typer.echo(f"bench {name} failed: {error}", err=True)
            raise typer.Exit(1) from None
        progress.update(task, description="done", completed=steps)
    return result


def _serve_bench(
    base_model_dir: Path | None, adapters_dir: Path | None, adapters: int, **options: Unpack[_Workload]
) -> ServeBench:
    from commands.bench.fixtures import adapter_folders
    from commands.bench.serve import ServeBench

    settings = make_settings()
    base = resolve_base_model(base_model_dir, "--base-model-dir")
    try:
        folders = adapter_folders(adapters_dir or settings.resolved_adapter_root, adapters)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--adapters-dir") from None
    return ServeBench(
        base_model_dir=base,
        adapters=folders,
        base_model_name=settings.base_model_name,
        **options,
    )


def bench_serve(
    base_model_dir: BaseModelDir = None,
    adapters_dir: ServedAdaptersDir = None,
    adapters: ServedAdapters = 4,
    num_prompts: Annotated[
        str,
        typer.Option(help="Requests per client run: one number, or one per concurrency, comma-separated."),
    ] = "32",
    concurrency: ConcurrencyList = "8",
    input_len: InputLen = 64,
    output_len: OutputLen = 32,
    max_model_len: Annotated[int, typer.Option(help="Context length of both engines.", min=128)] = 2048,
    kv_cache_gib: Annotated[int, typer.Option(help="KV cache of both engines on the CPU, GiB.", min=1)] = 1,
    gpu_memory_utilization: GpuShare = 0.4,
    api: Annotated[
        Literal["completions", "chat"],
        typer.Option(help="Endpoint driven (completions: TTFT is timed alike on both servers)."),
    ] = "completions",
    repeats: Annotated[
        int, typer.Option(help="Client runs per server, in turn (ours, plain, then plain, ours…).", min=1)
    ] = 3,
    max_num_seqs: Annotated[
        int | None, typer.Option(help="Both engines' requests per step (default: vLLM's server's).", min=1)
    ] = None,
    max_num_batched_tokens: Annotated[
        int | None, typer.Option(help="Both engines' tokens per step (default: vLLM's server's).", min=1)
    ] = None,
    profile: Annotated[
        Path | None,
        typer.Option(help="Folder for py-spy profiles of both front ends during their last run."),
    ] = None,
    out: JsonOut = None,
) -> None:
    """Service overhead vs plain vLLM: our service and vLLM's own OpenAI server with the same model, adapters
    and engine settings, both started once, driven in turn by vLLM's serving benchmark at each concurrency;
    ratio of the means ours / plain, with the spread of the per-pair ratios. With several concurrencies and
    --out, one JSON per concurrency (its name ending -cN)."""
    from commands.bench.serve import run_serve_bench

    levels = int_list(concurrency, "--concurrency", minimum=1)
    prompts = int_list(num_prompts, "--num-prompts", minimum=1)
    if len(prompts) == 1:
        prompts *= len(levels)
    if len(prompts) != len(levels):
        raise typer.BadParameter("one prompt count, or one per concurrency", param_hint="--num-prompts")
    bench = _serve_bench(
        base_model_dir,
        adapters_dir,
        adapters,
        input_len=input_len,
        output_len=output_len,
        max_model_len=max_model_len,
        kv_cache_gib=kv_cache_gib,
        gpu_memory_utilization=gpu_memory_utilization,
        api=api,
        repeats=repeats,
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=max_num_batched_tokens,
        profile_dir=profile.resolve() if profile else None,
    )
    workloads = list(zip(levels, prompts, strict=True))
    if profile:
        profile.mkdir(parents=True, exist_ok=True)
    # start; then per workload: warm up, an unmeasured run each, each client run
    steps = 1 + len(workloads) * (3 + 2 * repeats)
    results = _with_servers(
        "serve", steps, lambda work, on_step: run_serve_bench(bench, workloads, work, on_step)
    )
    for result in results:
        where = out
        if out is not None and len(results) > 1:
            where = out.with_name(f"{out.stem}-c{result['concurrency']}{out.suffix}")
        _report_serve(result, where)


def _report_serve(result: dict[str, Any], out: Path | None) -> None:
    ours, plain = result["mean"]["ours"], result["mean"]["plain_vllm"]
    ratio, spread = result["ratio_ours_over_plain"], result["ratio_spread"]
    limits = result["engine_limits"]
    rows = [
        (
            "engine: requests / tokens per step",
            "{max_num_seqs} / {max_num_batched_tokens}".format(**limits["ours"]),
            "{max_num_seqs} / {max_num_batched_tokens}".format(**limits["plain_vllm"]),
            "",
        ),
        (
            "requests ok / failed",
            f"{ours['completed']} / {ours['failed']}",
            f"{plain['completed']} / {plain['failed']}",
            "",
        ),
    ]
    measures = [
        ("request throughput (req/s)", "request_throughput"),
        ("output tokens/s", "output_throughput"),
    ]
    for metric in ("ttft", "itl"):
        for stat in ("mean", "median", "p99"):
            measures.append((f"{metric.upper()} {stat} (ms)", f"{stat}_{metric}_ms"))
    for label, key in measures:
        share, (low, high) = ratio.get(key), spread.get(key) or (None, None)
        shown = "" if share is None else f"{share:.3f}" + ("" if low is None else f" ({low:.3f}–{high:.3f})")
        rows.append((label, f"{ours[key]:.2f}", f"{plain[key]:.2f}", shown))
    report_result(
        result,
        out,
        f"service vs plain vLLM ({result['api']}): {len(result['adapters'])} adapters, "
        f"{result['num_prompts']} requests, concurrency {result['concurrency']}, {result['input_len']} in / "
        f"{result['output_len']} out tokens; means of {result['repeats']} runs each",
        rows,
        ("measure", "ours", "plain vLLM", "ours / plain (per-pair range)"),
        wide=False,
    )


def bench_replicas(
    replicas: Annotated[
        str, typer.Option(help="Replica counts, all started at once; 0 is the embedded engine (no hop).")
    ] = "0,1,2",
    base_model_dir: BaseModelDir = None,
    adapters_dir: ServedAdaptersDir = None,
    adapters: ServedAdapters = 4,
    num_prompts: NumPrompts = 32,
    concurrency: Concurrency = 8,
    input_len: InputLen = 64,
    output_len: OutputLen = 32,
    kv_cache_gib: Annotated[int, typer.Option(help="KV cache of each engine on the CPU, GiB.", min=1)] = 1,
    # Every count's engines run at once: 0,1,2 is four engines.
    gpu_memory_utilization: GpuShare = 0.2,
    repeats: Annotated[int, typer.Option(help="Client runs per configuration, in turn.", min=1)] = 3,
    out: JsonOut = None,
) -> None:
    """Throughput over engine replicas: for each count, that many `vllm serve` replicas behind one router
    (remote engine), all started at once and driven in turn by vLLM's serving benchmark client; ratio of
    the means to the first count, with the spread of the per-round ratios."""
    from commands.bench.scaleout import run_replica_bench

    counts = int_list(replicas, "--replicas")
    bench = _serve_bench(
        base_model_dir,
        adapters_dir,
        adapters,
        num_prompts=num_prompts,
        concurrency=concurrency,
        input_len=input_len,
        output_len=output_len,
        kv_cache_gib=kv_cache_gib,
        gpu_memory_utilization=gpu_memory_utilization,
        repeats=repeats,
    )
    steps = 1 + (2 + repeats) * len(counts)  # each started, warm-up, an unmeasured run each, the runs
    result = _with_servers(
        "replicas", steps, lambda work, on_step: run_replica_bench(bench, counts, work, on_step)
    )
    notes = []
    for label, run in result["mean"].items():
        line = (
            f"{label}: {run['output_throughput']:.2f} output tok/s, TTFT p99 {run['p99_ttft_ms']:.0f} ms, "
            f"ITL p99 {run['p99_itl_ms']:.1f} ms, ok/failed {run['completed']}/{run['failed']}, "
            f"requests per replica {result['replicas'][label]['requests_per_replica']}"
        )
        ratio, spread = result["ratio_vs_first"].get(label), result["ratio_spread"].get(label)
        if ratio is not None and spread is not None:
            low, high = spread["output_throughput"] or (float("nan"),) * 2
            line += (
                f"; tok/s {ratio['output_throughput']:.3f}x the first ({low:.3f}-{high:.3f}), "
                f"TTFT p99 {ratio['p99_ttft_ms']:.2f}x, ITL p99 {ratio['p99_itl_ms']:.2f}x"
            )
        notes.append(line)
    report_result(result, out, notes=notes)


def bench_relay(
    concurrency: Concurrency = 64,
    tokens: Annotated[int, typer.Option(help="Tokens streamed per request.", min=1)] = 128,
    rounds: Annotated[int, typer.Option(help="Measured rounds of `concurrency` streams.", min=1)] = 5,
    base_model_dir: Annotated[
        Path | None,
        typer.Option(help="Also through a whole router over the stand-in (needs the model's tokenizer)."),
    ] = None,
    out: JsonOut = None,
) -> None:
    """The remote engine's relay alone: tokens per second one router process takes in from a stand-in
    replica streaming as fast as it can, and its CPU time per token (no engine, no GPU needed); with
    --base-model-dir, the same through a whole router process (HTTP in, relay, SSE out)."""
    from commands.bench.relay import run_relay_bench

    base = resolve_base_model(base_model_dir, "--base-model-dir") if base_model_dir else None
    result = _with_servers(
        "relay",
        2 if base else 1,
        lambda work, on_step: run_relay_bench(concurrency, tokens, rounds, work, base, on_step),
    )
    parts = {"replica client alone": result["client"], "whole router": result.get("router")}
    rows = [
        (name, str(i + 1), f"{run['tokens_per_s']:,}", f"{run['cpu_us_per_token']:.2f}")
        for name, part in parts.items()
        if part
        for i, run in enumerate(part["runs"])
    ]
    report_result(
        result,
        out,
        f"relay: {concurrency} streams of {tokens} tokens from a stand-in replica",
        rows,
        ("what reads the streams", "round", "tokens/s", "its CPU µs/token"),
        notes=[
            f"{name}, median: {part['median_tokens_per_s']:,.0f} tokens/s, "
            f"{part['median_cpu_us_per_token']:.2f} µs of CPU per token"
            for name, part in parts.items()
            if part
        ],
    )


def bench_cold(
    path: Annotated[
        str,
        typer.Option(
            help="Adapter folder to register, relative to the service's adapter root "
            "(GET /v1/adapter-folders lists them)."
        ),
    ],
    url: ServiceUrl = "http://127.0.0.1:8000",
    name: Annotated[str, typer.Option(help="Prefix of the temporary adapter names.")] = "cold",
    rounds: Annotated[int, typer.Option(help="Measured register → chat → unregister rounds.", min=1)] = 10,
    warm: Annotated[int, typer.Option(help="Warm chats per round, after the cold one.", min=0)] = 5,
    warmup: Annotated[int, typer.Option(help="Unmeasured rounds first.", min=0)] = 1,
    max_tokens: Annotated[int, typer.Option(help="Tokens each answer is made to have.", min=1)] = 8,
    out: JsonOut = None,
    api_key: ApiKey = None,
) -> None:
    """Cold start of a newly registered adapter: register it (admin key) and chat to it at once; time
    register → first token, the register call, the cold TTFT and warm TTFTs; then unregister it."""
    import httpx

    from commands.bench.cold import ColdBenchError, run_cold

    with progress_bar() as progress:
        task = progress.add_task(f"registering {path} as new adapters", total=warmup + rounds)
        try:
            result = run_cold(
                url,
                path,
                prefix=name,
                rounds=rounds,
                warm=warm,
                warmup_rounds=warmup,
                max_tokens=max_tokens,
                api_key=api_key,
                on_round=lambda: progress.advance(task),
            )
        except (ColdBenchError, httpx.HTTPError) as error:
            progress.stop()
            typer.echo(f"bench cold failed: {error}", err=True)
            raise typer.Exit(1) from None

    rows = []
    for label, key in (
        ("register → first token", "register_to_first_token"),
        ("register call", "register"),
        ("TTFT, first chat (cold)", "cold_ttft"),
        ("TTFT, later chats (warm)", "warm_ttft"),
    ):
        if timing := result[key]:
            rows.append((label, f"{timing['p50_ms']:.1f}", f"{timing['p99_ms']:.1f}", str(timing["n"])))
    ratio = result["cold_over_warm_ttft_p50"]
    changed = not result["registry_unchanged"]
    report_result(
        result,
        out,
        f"cold start: {path} registered {rounds} times, {warm} warm chats each",
        rows,
        ("measure", "p50 ms", "p99 ms", "n"),
        wide=False,
        notes=[] if ratio is None else [f"cold / warm TTFT (p50): {ratio:.2f}x"],
        warnings=["warning: the service's adapter list differs from before the run"] if changed else [],
    )
