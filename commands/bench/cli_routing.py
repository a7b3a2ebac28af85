"""`lora-router bench` commands that measure routing: its cost per message and share of time to first
token, and how well routers trained by the service's code route a public data set."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any

import typer

from commands.bench.options import JsonOut
from commands.bench.stats import environment, print_rows, report_result, write_json
from commands.common import ApiKey, make_settings, progress_bar, quiet_router_training, quiet_transformers
from commands.process import REPO

# The public routing benchmark, beside a checkout (see `bench routing-quality`).
DEFAULT_CLINC150 = REPO.parent / "shared" / "data" / "clinc150"


def bench_router(
    messages: Annotated[
        Path | None, typer.Option(help="YAML/JSONL of messages (default: the shipped held-out intents).")
    ] = None,
    n: Annotated[int, typer.Option(help="Messages timed one by one.")] = 300,
    batch_size: Annotated[int, typer.Option(help="Messages per batched call.")] = 16,
    url: Annotated[str | None, typer.Option(help="A running service: also time `auto` TTFT there.")] = None,
    ttft_n: Annotated[int, typer.Option(help="`auto` chats timed against --url.")] = 40,
    out: JsonOut = None,
    api_key: ApiKey = None,
) -> None:
    """Routing cost per message on this machine, single and batched, for the ONNX Runtime and the torch
    encoder side by side, and its share of time-to-first-token."""
    import platform

    import torch

    from classifier import load_examples
    from commands.bench.routing import classifier_latency, service_ttft
    from router.routing.open_store import open_router_store

    settings = make_settings()
    quiet_transformers()
    torch.set_num_threads(settings.router_threads)  # as inside the service
    version = open_router_store(settings).current_version()
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
    service: dict[str, Any] | None = None
    with progress_bar() as progress:
        for backend in ("onnx", "torch"):
            store = open_router_store(settings.model_copy(update={"router_backend": backend}))
            classifier, _ = store.load(version)
            task = progress.add_task(f"classifier latency ({classifier.backend})", total=n)
            latency[classifier.backend] = classifier_latency(
                classifier,
                texts,
                n=n,
                batch_size=batch_size,
                on_step=functools.partial(progress.advance, task),
            )
        result["classifier"] = latency
        if url:
            task = progress.add_task("service TTFT (auto, concurrency 1)", total=ttft_n)
            service = service_ttft(
                url, texts, n=ttft_n, on_step=lambda: progress.advance(task), api_key=api_key
            )
            result["service"] = service

    rows = []
    for backend, timing in latency.items():
        for label, row in (
            (f"{backend}: classify one message", timing["single"]),
            (f"{backend}: classify a batch of {batch_size}", timing["batched"]),
        ):
            rows.append((label, str(row["p50_ms"]), str(row["p99_ms"]), str(row["n"])))
    if service is not None:
        for label, key in (("routing inside the service", "routing"), ("time to first token (auto)", "ttft")):
            row = service[key]
            rows.append((label, str(row["p50_ms"]), str(row["p99_ms"]), str(row["n"])))
    notes = []
    if {"onnx", "torch"} <= latency.keys():
        ratio = latency["torch"]["single"]["p50_ms"] / latency["onnx"]["single"]["p50_ms"]
        result["torch_over_onnx_p50"] = round(ratio, 2)
        notes.append(f"torch / onnx, one message p50: {ratio:.2f}x")
    if service is not None:
        notes.append(f"routing share of TTFT (p50): {service['routing_share_of_ttft_p50']:.2%}")
    report_result(
        result,
        out,
        f"routing cost (router {version[:12]}, {settings.router_threads} thread(s))",
        rows,
        ("measure", "p50 ms", "p99 ms", "n"),
        justify="left",
        wide=False,
        notes=notes,
    )


def bench_routing_quality(
    data: Annotated[
        Path,
        typer.Option(help="CLINC150 folder with train.jsonl and val.jsonl.", exists=True, file_okay=False),
    ] = DEFAULT_CLINC150,
    shots: Annotated[str, typer.Option(help="Examples per domain, comma-separated.")] = "8,16",
    sub_intent_shots: Annotated[
        int, typer.Option(help="Examples per intent, labelled by intent (0: skip).")
    ] = 2,
    none: Annotated[
        int, typer.Option(help="Also runs with this many 'none of these' examples (0: skip).")
    ] = 16,
    random: Annotated[bool, typer.Option(help="Also draw each domain's examples at random.")] = True,
    seeds: Annotated[int, typer.Option(help="Training sets drawn per setup.", min=1)] = 5,
    out: Annotated[Path | None, typer.Option(help="Folder for the JSON result and the PNG curve.")] = None,
) -> None:
    """How well routers trained by the service's code route CLINC150's validation split (10 domains as
    adapters): in-scope accuracy, training seconds, and out-of-scope recall against in-scope fallbacks."""
    from commands.bench.routing_quality import Draw, run_benchmark, save_curve_png
    from router.routing.policy import PolicyConfig
    from router.routing.training import TrainingOptions

    settings = make_settings()
    quiet_router_training(settings.router_finetune == "setfit")
    # The domains stand for adapters; nothing is mapped to the base model but what falls back.
    policy = PolicyConfig.from_settings(settings.model_copy(update={"route_map": {}}))
    ks = [int(k) for k in shots.split(",") if k.strip()]
    setups: list[tuple[Draw, int, int]] = [("varied", k, 0) for k in ks]
    setups += [("random", k, 0) for k in ks if random]
    if sub_intent_shots:
        setups.append(("sub-intents", sub_intent_shots, 0))
    if none:
        setups.append(("varied", max(ks), none))
        if sub_intent_shots:
            setups.append(("sub-intents", sub_intent_shots, none))
    with progress_bar() as progress:
        task = progress.add_task("routing quality", total=len(setups) * seeds)

        def step(label: str) -> None:
            progress.update(task, description=f"routing quality: {label}")
            progress.advance(task)

        result = run_benchmark(
            data, TrainingOptions.from_settings(settings).classifier, policy, setups, seeds, step
        )
    result["environment"] = environment()
    rows = []
    for row in result["rows"]:
        name = f"{row['draw']} k={row['k']}" + (
            f" + {row['none_examples']} none" if row["none_examples"] else ""
        )
        cells = [
            row[key]
            for key in ("accuracy", "routed_accuracy", "fallback_rate", "oos_recall", "train_seconds")
        ]
        rows.append((name, str(row["examples"]), *(f"{c['mean']:.3f} ± {c['sd']:.3f}" for c in cells)))
    print_rows(
        f"CLINC150 validation, 10 domains as adapters, {seeds} seeds (mean ± sd)",
        rows,
        ("training set", "examples", "accuracy", "routed", "in-scope fallback", "oos caught", "train s"),
        justify="left",
        wide=False,
    )
    # Two files, so not report_result's single JSON.
    if out:
        write_json(out / "routing-quality.json", result)
        save_curve_png(result, out / "routing-quality.png")
        typer.echo(f"wrote {out / 'routing-quality.json'} and {out / 'routing-quality.png'}")
