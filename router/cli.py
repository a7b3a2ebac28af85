"""``lora-router``: one entry point for serving and the jobs around it. Heavy imports stay inside commands."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Serve one base LLM with many LoRA experts."
)


def _settings(**overrides: object):  # -> Settings
    from router.settings import Settings

    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _progress():  # -> rich.progress.Progress
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())


def _train_router_with_progress(settings, examples: Path) -> str:  # noqa: ANN001
    from router.routing.offline import train_router

    with _progress() as progress:
        task = progress.add_task(f"router: training on {examples.name}", total=1.0)
        version, classifier = train_router(
            settings, examples, on_progress=lambda fraction: progress.update(task, completed=fraction)
        )
        progress.update(task, completed=1.0)
    typer.echo(f"router {version} is live; labels: {', '.join(classifier.labels)}")
    return version


@app.command()
def prepare(force: Annotated[bool, typer.Option(help="Rebuild even if already prepared.")] = False) -> None:
    """Write the base model (SmolLM2-135M-Instruct, bf16 safetensors) and train the default router."""
    from router.prepare import prepare_base_model
    from router.routing.store import RouterStore

    settings = _settings()
    target = settings.resolved_base_model_path
    with _progress() as progress:
        task = progress.add_task("base model: checking", total=None)
        written = prepare_base_model(
            target, step=lambda what: progress.update(task, description=f"base model: {what}"), force=force
        )
        progress.update(task, description="base model: done", total=1, completed=1)
    typer.echo(f"base model {'written to' if written else 'already prepared at'} {target}")
    if force or RouterStore(settings.router_dir).current_version() is None:
        _train_router_with_progress(settings, settings.resolved_router_examples_file)
    else:
        typer.echo("router already trained (retrain with `lora-router train-router`)")


@app.command("train-router")
def train_router(
    examples: Annotated[Path, typer.Argument(help="YAML or JSONL of {text, label} examples.", exists=True)],
) -> None:
    """Train a router from few-shot examples and make it the live one (a running service picks it up on
    restart; use POST /v1/router/train to retrain a running service)."""
    _train_router_with_progress(_settings(), examples)


@app.command("eval-router")
def eval_router(
    heldout: Annotated[Path, typer.Argument(help="Held-out YAML/JSONL of {text, label}.", exists=True)],
    out: Annotated[Path | None, typer.Option(help="Folder for report.json and confusion.png.")] = None,
    version: Annotated[str | None, typer.Option(help="Router version (default: the live one).")] = None,
) -> None:
    """Accuracy, macro-F1, confusion matrix and the threshold / fallback-rate trade-off on held-out data."""
    from router.routing.offline import evaluate_router

    with _progress() as progress:
        progress.add_task("router: evaluating", total=None)
        version, report = evaluate_router(_settings(), heldout, version)
    typer.echo(f"router {version} on {heldout}\n{report.to_text()}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(report.to_json())
        report.save_confusion_png(out / "confusion.png")
        typer.echo(f"wrote {out / 'report.json'} and {out / 'confusion.png'}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default from settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "info",
) -> None:
    """Start the OpenAI-compatible service on the vLLM engine."""
    import uvicorn

    from router.app import build_app

    _logging(log_level)
    settings = _settings(host=host, port=port)
    uvicorn.run(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        timeout_graceful_shutdown=int(settings.graceful_shutdown_s),
    )


bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks: each prints a table and writes JSON.")
app.add_typer(bench_app, name="bench")


@bench_app.command("router")
def bench_router(
    messages: Annotated[
        Path | None, typer.Option(help="YAML/JSONL of messages (default: the shipped held-out intents).")
    ] = None,
    n: Annotated[int, typer.Option(help="Messages timed one by one.")] = 300,
    batch_size: Annotated[int, typer.Option(help="Messages per batched call.")] = 16,
    url: Annotated[str | None, typer.Option(help="A running service: also time `auto` TTFT there.")] = None,
    ttft_n: Annotated[int, typer.Option(help="`auto` chats timed against --url.")] = 40,
    out: Annotated[Path | None, typer.Option(help="Write the result as JSON here.")] = None,
) -> None:
    """Routing cost per message on this machine, single and batched, for the ONNX Runtime and the torch
    encoder side by side, and its share of time-to-first-token."""
    import platform

    import torch
    from rich.console import Console
    from rich.table import Table

    from classifier import load_examples
    from router.bench.routing import classifier_latency, service_ttft, write_json
    from router.routing.store import RouterStore

    settings = _settings()
    torch.set_num_threads(settings.router_threads)  # as inside the service
    version = RouterStore(settings.router_dir).current_version()
    if version is None:
        raise typer.BadParameter("no router trained yet: run `lora-router prepare` or `train-router` first")
    texts = [
        e.text
        for e in load_examples(
            messages or settings.resolved_router_examples_file.with_name("intents_heldout.yaml")
        )
    ]
    result: dict[str, object] = {
        "router_version": version,
        "machine": platform.processor() or platform.machine(),
        "threads": settings.router_threads,
        "service_backend": settings.router_backend,
    }
    latency: dict[str, dict] = {}
    with _progress() as progress:
        for backend in ("onnx", "torch"):
            store = RouterStore(settings.router_dir, backend=backend, threads=settings.router_threads)
            classifier, _ = store.load(version)
            task = progress.add_task(f"classifier latency ({classifier.backend})", total=n)
            latency[classifier.backend] = classifier_latency(
                classifier, texts, n=n, batch_size=batch_size, on_step=lambda t=task: progress.advance(t)
            )
        result["classifier"] = latency
        if url:
            task = progress.add_task("service TTFT (auto, concurrency 1)", total=ttft_n)
            result["service"] = service_ttft(url, texts, n=ttft_n, on_step=lambda: progress.advance(task))

    table = Table(title=f"routing cost (router {version[:12]}, {settings.router_threads} thread(s))")
    for column in ("measure", "p50 ms", "p99 ms", "n"):
        table.add_column(column)
    for backend, timing in latency.items():
        single, batched = timing["single"], timing["batched"]
        table.add_row(
            f"{backend}: classify one message", str(single["p50_ms"]), str(single["p99_ms"]), str(single["n"])
        )
        table.add_row(
            f"{backend}: classify a batch of {batch_size}",
            str(batched["p50_ms"]),
            str(batched["p99_ms"]),
            str(batched["n"]),
        )
    if url:
        service = result["service"]
        for label, key in (("routing inside the service", "routing"), ("time to first token (auto)", "ttft")):
            row = service[key]
            table.add_row(label, str(row["p50_ms"]), str(row["p99_ms"]), str(row["n"]))
    Console().print(table)
    if {"onnx", "torch"} <= latency.keys():
        ratio = latency["torch"]["single"]["p50_ms"] / latency["onnx"]["single"]["p50_ms"]
        result["torch_over_onnx_p50"] = round(ratio, 2)
        typer.echo(f"torch / onnx, one message p50: {ratio:.2f}x")
    if url:
        typer.echo(f"routing share of TTFT (p50): {result['service']['routing_share_of_ttft_p50']:.2%}")
    if out:
        write_json(out, result)
        typer.echo(f"wrote {out}")
