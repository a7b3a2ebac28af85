"""Training a router version: the one path behind a runtime retrain (`RouterManager.train`), the start-up
retrain of an artifact saved by an older release, and the `train-router` command."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from classifier import Example, IntentClassifier, TrainingConfig, check_training_set
from router.routing.store import RouterVersionStore

if TYPE_CHECKING:
    from router.settings import Settings


@dataclass(frozen=True)
class TrainingOptions:
    classifier: TrainingConfig = TrainingConfig()
    max_examples: int = 5000
    max_text_chars: int = 2000

    @classmethod
    def from_settings(cls, settings: Settings) -> TrainingOptions:
        return cls(
            classifier=TrainingConfig(
                seed=settings.seed,
                finetune=settings.router_finetune,
                body_layers=settings.router_body_layers or None,
                oos_quantile=settings.router_oos_quantile,
                num_iterations=settings.router_train_iterations,
            ),
            max_examples=settings.router_max_examples,
            max_text_chars=settings.router_max_text_chars,
        )


def train_version(
    store: RouterVersionStore,
    examples: list[Example],
    options: TrainingOptions,
    *,
    warm_start: IntentClassifier | None = None,
    on_progress: Callable[[float], None] | None = None,
    check_labels: Callable[[list[str]], None] | None = None,
) -> tuple[str, IntentClassifier]:
    """Check the examples, train, and save a new version without making it live; its version and classifier.

    ``check_labels`` refuses labels nothing would answer; it runs before training and again after it, since
    adapters may come or go while the classifier trains. Raises `TrainingDataError` for unusable examples.
    """
    check_training_set(examples, max_examples=options.max_examples, max_text_chars=options.max_text_chars)
    if check_labels is not None:
        check_labels(sorted({e.label for e in examples}))
    classifier = IntentClassifier.train(
        examples, config=options.classifier, warm_start=warm_start, on_progress=on_progress
    )
    if check_labels is not None:
        check_labels(classifier.labels)
    return store.save(classifier, examples), classifier
