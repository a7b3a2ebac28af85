"""Router jobs run from the CLI (no service needed): train and activate, evaluate the live router."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from classifier import EvalReport, IntentClassifier, load_examples
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


def evaluate_router(
    settings: Settings, heldout_path: Path, version: str | None = None
) -> tuple[str, EvalReport]:
    store = open_router_store(settings)
    version = version or store.current_version()
    if version is None:
        raise FileNotFoundError(f"no router in {settings.router_dir}; run `lora-router train-router` first")
    classifier, _ = store.load(version)
    fallback_label = PolicyConfig.from_settings(settings).fallback_label()
    report = classifier.evaluate(load_examples(heldout_path), fallback_label=fallback_label)
    return version, report
