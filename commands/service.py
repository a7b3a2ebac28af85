"""The service's own commands: prepare its base model and router, serve it, run an engine replica, make an
API key."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from commands.common import make_settings, progress_bar, quiet_transformers
from commands.router import train_router_with_progress


def prepare(force: Annotated[bool, typer.Option(help="Rebuild even if already prepared.")] = False) -> None:
    """Write the base model (SmolLM2-135M-Instruct, bf16 safetensors) and train the default router."""
    from commands.prepare import prepare_base_model
    from router.routing.open_store import open_router_store

    settings = make_settings()
    target = settings.resolved_base_model_path
    quiet_transformers()
    with progress_bar() as progress:
        task = progress.add_task("base model: checking", total=None)
        written = prepare_base_model(
            target, step=lambda what: progress.update(task, description=f"base model: {what}"), force=force
        )
        progress.update(task, description="base model: done", total=1, completed=1)
    typer.echo(f"base model {'written to' if written else 'already prepared at'} {target}")
    if force or open_router_store(settings).current_version() is None:
        train_router_with_progress(settings, settings.resolved_router_examples_file)
    else:
        typer.echo("router already trained (retrain with `lora-router train-router`)")


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default from settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "info",
) -> None:
    """Start the OpenAI-compatible service on the vLLM engine."""
    import uvicorn

    from router.app import build_app
    from router.observability.logs import configure_logging

    settings = make_settings(host=host, port=port)
    uvicorn.run(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=configure_logging(log_level, settings.log_format),
        # Replaced by the service's own access log, which carries the request id and the routing.
        access_log=False,
        timeout_graceful_shutdown=int(settings.graceful_shutdown_s),
    )


def replica(
    host: Annotated[str, typer.Option(help="Bind address: the replicas' private network only.")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
) -> None:
    """Run one engine replica for `LORA_ROUTER_ENGINE=remote`: vLLM's OpenAI server with LoRA and runtime
    adapter loading, its flags taken from the same settings the routers read."""
    import os

    from router.replica import check_base_requests, replica_command, replica_dtype, replica_env

    settings = make_settings()
    try:
        check_base_requests(settings)
    except ValueError as error:
        typer.echo(f"replica not started: {error}", err=True)
        raise typer.Exit(1) from None
    command = replica_command(settings, host=host, port=port, dtype=replica_dtype(settings))
    os.execvpe(command[0], command, {**os.environ, **replica_env(settings)})


def api_key(
    scope: Annotated[Literal["user", "admin"], typer.Option(help="What the key may do.")] = "user",
    key: Annotated[
        str | None, typer.Option(help="Hash this key instead of making a new one (e.g. to rotate one in).")
    ] = None,
) -> None:
    """Make an API key and print the settings entry that allows it; the service stores only its hash."""
    import json

    from router.auth import hash_key, new_key

    key = key or new_key()
    typer.echo(f"key (give it to the client; it is not stored): {key}")
    typer.echo(f"settings entry: LORA_ROUTER_API_KEYS='{json.dumps({hash_key(key): scope})}'")
    typer.echo("(several keys: merge their entries into one JSON object)")
