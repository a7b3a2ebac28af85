"""What the command modules share: settings, progress bars, quieter libraries, the base model folder and
a running service's models."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.progress import Progress

    from router.settings import Settings

# Commands that call a running service send this key (an admin key where they register or train).
ApiKey = Annotated[
    str | None,
    typer.Option(envvar="LORA_ROUTER_API_KEY", help="API key for the service (env LORA_ROUTER_API_KEY)."),
]


# Any: each override is validated by Settings, which is what reads them.
def make_settings(**overrides: Any) -> Settings:
    from router.settings import Settings

    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def progress_bar() -> Progress:
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())


def quiet_transformers() -> None:
    # transformers draws its own bars (loading and writing weights) under ours.
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()


def quiet_router_training(finetune: bool) -> None:
    quiet_transformers()
    if not finetune:
        return
    # Fine-tuning with SetFit: datasets draws a bar per mapping, and importing setfit's trainer turns its log
    # level up to INFO (a banner per run); import it first so the level set here is the one that stays.
    import datasets
    import setfit.trainer  # noqa: F401
    from setfit import logging as setfit_logging

    datasets.disable_progress_bars()
    setfit_logging.set_verbosity_warning()


def resolve_base_model(path: Path | None, option: str = "--base-model") -> Path:
    folder = path or make_settings().resolved_base_model_path
    if not (folder / "config.json").is_file():
        raise typer.BadParameter(
            f"no model at {folder}: run `lora-router prepare` or pass {option}", param_hint=option
        )
    return folder


def service_models(url: str, api_key: str | None) -> tuple[str, list[str]]:
    """The service's base model and its adapters, from /v1/models (`auto` is neither)."""
    from commands.client import service_client

    with service_client(url, api_key) as client:
        models = [m for m in client.get("/v1/models").json()["data"] if m["id"] != "auto"]
    base = next(m["id"] for m in models if m.get("parent") is None)
    return base, [m["id"] for m in models if m.get("parent")]


def int_list(text: str, option: str, minimum: int = 0) -> list[int]:
    """At least one comma-separated integer, none below ``minimum``; else a usage error naming ``option``."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < minimum:
        raise typer.BadParameter(
            f"expected comma-separated integers of at least {minimum}, got {text!r}", param_hint=option
        )
    return values
