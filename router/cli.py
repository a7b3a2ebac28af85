"""``lora-router``: one entry point for serving and the jobs around it. Heavy imports stay inside commands."""

from __future__ import annotations

import logging
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


@app.command()
def prepare(force: Annotated[bool, typer.Option(help="Rebuild even if already prepared.")] = False) -> None:
    """Write the embedded base model (SmolLM2-135M-Instruct, bf16 safetensors) into the data directory."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from router.prepare import prepare_base_model

    settings = _settings()
    target = settings.resolved_base_model_path
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()) as progress:
        task = progress.add_task("base model: checking", total=None)
        written = prepare_base_model(
            target, step=lambda what: progress.update(task, description=f"base model: {what}"), force=force
        )
        progress.update(task, description="base model: done")
    typer.echo(f"base model {'written to' if written else 'already prepared at'} {target}")


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
