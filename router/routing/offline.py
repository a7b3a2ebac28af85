"""Router jobs run from the CLI (no service needed): train and activate, evaluate the live router."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from classifier import IntentClassifier, load_examples
from lora_registry import open_adapter_store
from router.routing.evaluation import RouterReport, evaluate_router
from router.routing.open_store import open_router_store
from router.routing.policy import PolicyConfig
from router.routing.training import TrainingOptions, train_version
from router.settings import Settings

logger = logging.getLogger(__name__)


def train_router(
    settings: Settings,
    examples_path: Path,
    *,
    activate: bool = True,
    on_progress: Callable[[float], None] | None = None,
) -> tuple[str, IntentClassifier]:
    store = open_router_store(settings)
    version, classifier = train_version(
        store, load_examples(examples_path), TrainingOptions.from_settings(settings), on_progress=on_progress
    )
    if activate:
        store.activate(version)
    return version, classifier


def evaluate_live_router(
    settings: Settings, heldout_path: Path, version: str | None = None
) -> tuple[str, RouterReport]:
    """A router version (the live one by default) on held-out examples, under the policy the settings
    configure and the adapters registered now."""
    store = open_router_store(settings)
    version = version or store.current_version()
    if version is None:
        raise FileNotFoundError(f"no router in {settings.router_dir}; run `lora-router train-router` first")
    classifier, _ = store.load(version)
    adapters = {
        spec.name for spec in open_adapter_store(settings.database_url, settings.resolved_registry_db).list()
    }
    report = evaluate_router(
        classifier, load_examples(heldout_path), PolicyConfig.from_settings(settings), adapters
    )
    return version, report
