"""The router's commands: train it from few-shot examples and evaluate it on held-out ones."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from commands.common import make_settings, progress_bar, quiet_router_training, quiet_transformers


def train_router_with_progress(settings, examples: Path) -> str:  # noqa: ANN001
    from router.routing.offline import train_router

    quiet_router_training(settings.router_finetune == "setfit")
    with progress_bar() as progress:
        task = progress.add_task(f"router: training on {examples.name}", total=1.0)
        version, classifier = train_router(
            settings, examples, on_progress=lambda fraction: progress.update(task, completed=fraction)
        )
        progress.update(task, completed=1.0)
    typer.echo(f"router {version} is live; labels: {', '.join(classifier.labels)}")
    return version


def train_router(
    examples: Annotated[Path, typer.Argument(help="YAML or JSONL of {text, label} examples.", exists=True)],
) -> None:
    """Train a router from few-shot examples and make it the live one (a running service picks it up on
    restart; use POST /v1/router/train to retrain a running service)."""
    train_router_with_progress(make_settings(), examples)


def eval_router(
    heldout: Annotated[Path, typer.Argument(help="Held-out YAML/JSONL of {text, label}.", exists=True)],
    out: Annotated[Path | None, typer.Option(help="Folder for report.json and confusion.png.")] = None,
    version: Annotated[str | None, typer.Option(help="Router version (default: the live one).")] = None,
) -> None:
    """Accuracy, macro-F1 and confusion matrix on held-out data, and what the live policy answers (fallback
    rate, accuracy) with a threshold sweep."""
    from router.routing.offline import evaluate_live_router

    quiet_transformers()
    with progress_bar() as progress:
        progress.add_task("router: evaluating", total=None)
        version, report = evaluate_live_router(make_settings(), heldout, version)
    typer.echo(f"router {version} on {heldout}\n{report.to_text()}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(report.to_json())
        typer.echo(f"wrote {out / 'report.json'}")
        try:
            report.save_confusion_png(out / "confusion.png")
        except ModuleNotFoundError as exc:  # a service-only install has no plotting library
            typer.echo(f"no confusion.png: {exc.name} is not installed (pip install 'lora-router[bench]')")
        else:
            typer.echo(f"wrote {out / 'confusion.png'}")
