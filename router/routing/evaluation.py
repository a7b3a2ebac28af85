"""The router's accuracy under the live policy: what `decide` answers labelled messages with, and how often
that is the model each message's label maps to.

A message is answered right when the decision's model is its label's target (`PolicyConfig.target_of`), so a
fallback is right only for a message whose label the fallback model serves (e.g. "chat" → the base model),
and a sub-intent counts for its adapter. The threshold sweep moves the confidence threshold alone and keeps
every other rule as live (margin, out of scope, which adapters are registered).

`score_policy` is a pure function of the labels and the classifier's scores, so its numbers can be worked out
by hand.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence, Set
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from classifier import EvalReport, Example, IntentClassifier, build_report
from router.routing.policy import PolicyConfig, Turn, decide

DEFAULT_THRESHOLDS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class PolicyScore:
    threshold: float
    fallback_rate: float
    """Share of messages the policy sends to the fallback model, for any reason."""
    accuracy_when_routed: float | None
    """Among the messages not sent to the fallback model; None when every message falls back."""
    accuracy_with_fallback: float
    """Share of all messages whose decision is their label's target."""
    fallback_reasons: dict[str, int]


@dataclass(frozen=True)
class RouterReport:
    classifier: EvalReport
    """The classifier's own metrics (top label against true label), before any policy rule."""
    policy: PolicyScore
    """The live policy as configured."""
    sweep: list[PolicyScore]

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.classifier.to_dict(),
            "policy": asdict(self.policy),
            "threshold_sweep": [asdict(row) for row in self.sweep],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_text(self) -> str:
        live = self.policy
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(live.fallback_reasons.items())) or "none"
        lines = [
            self.classifier.to_text(),
            f"under the live policy (threshold {live.threshold:.2f}): fallback {live.fallback_rate:.1%} "
            f"({reasons}), accuracy when routed {_rate(live.accuracy_when_routed)}, "
            f"with fallback {live.accuracy_with_fallback:.3f}",
            "",
            "threshold  fallback  acc. routed  acc. with fallback (other rules as live)",
        ]
        for row in self.sweep:
            rates = f"{row.threshold:9.2f}  {row.fallback_rate:8.1%}"
            lines.append(
                f"{rates}  {_rate(row.accuracy_when_routed):>11}  {row.accuracy_with_fallback:18.3f}"
            )
        return "\n".join(lines) + "\n"

    def save_confusion_png(self, path: Path) -> None:
        self.classifier.save_confusion_png(path)


def score_policy(
    true_labels: Sequence[str],
    turns: Sequence[Turn],
    config: PolicyConfig,
    adapters: Set[str],
    *,
    oos_threshold: float | None = None,
) -> PolicyScore:
    """How ``config`` answers messages labelled ``true_labels``, given the classifier's ``turns``."""
    if len(true_labels) != len(turns) or not turns:
        raise ValueError(f"need one turn per label and at least one, got {len(true_labels)} and {len(turns)}")
    decisions = [decide(turn, config, adapters, oos_threshold=oos_threshold) for turn in turns]
    right = np.array(
        [d.model == config.target_of(label) for d, label in zip(decisions, true_labels, strict=True)]
    )
    routed = np.array([d.fallback_reason is None for d in decisions])
    return PolicyScore(
        threshold=config.threshold,
        fallback_rate=float(1.0 - routed.mean()),
        accuracy_when_routed=float(right[routed].mean()) if routed.any() else None,
        accuracy_with_fallback=float(right.mean()),
        fallback_reasons=dict(Counter(d.fallback_reason for d in decisions if d.fallback_reason is not None)),
    )


def evaluate_router(
    classifier: IntentClassifier,
    examples: Sequence[Example],
    config: PolicyConfig,
    adapters: Set[str],
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> RouterReport:
    """The classifier's metrics on ``examples``, and the policy's accuracy on them with a threshold sweep."""
    if not examples:
        raise ValueError("nothing to evaluate: no examples")
    true_labels = [e.label for e in examples]
    classifications = classifier.classify_all([e.text for e in examples])
    labels = classifier.labels
    turns = [Turn.of(labels, c) for c in classifications]
    probas = np.stack([c.probabilities for c in classifications])

    def score(policy: PolicyConfig) -> PolicyScore:
        return score_policy(true_labels, turns, policy, adapters, oos_threshold=classifier.oos_threshold)

    return RouterReport(
        classifier=build_report(true_labels, probas, labels),
        policy=score(config),
        sweep=[score(replace(config, threshold=float(t))) for t in thresholds],
    )


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
