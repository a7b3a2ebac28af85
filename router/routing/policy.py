"""The routing policy: classifier scores in, the model that answers out. Pure code, no I/O.

A label maps to the adapter of the same name unless the route map says otherwise (e.g. `chat` → base
model). Low confidence, a close second label, or a label without a live adapter sends the message to the
fallback model instead, and the decision says why: the router never fails a request for being unsure.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from router.settings import Settings


class FallbackReason:
    LOW_CONFIDENCE = "low_confidence"
    AMBIGUOUS = "ambiguous"
    NO_ADAPTER = "no_adapter"
    NO_ROUTER = "no_router"
    CLASSIFIER_ERROR = "classifier_error"


@dataclass(frozen=True)
class PolicyConfig:
    threshold: float
    min_margin: float
    fallback: str
    """Model answering whenever the router does not pick: the base model's name or an adapter's."""
    base_model: str
    route_map: Mapping[str, str] = field(default_factory=dict)
    """label → model name (an adapter or the base model); unmapped labels go to the adapter of that name."""

    @classmethod
    def from_settings(cls, settings: Settings) -> PolicyConfig:
        return cls(
            threshold=settings.router_threshold,
            min_margin=settings.router_min_margin,
            fallback=settings.resolved_router_fallback,
            base_model=settings.base_model_name,
            route_map=settings.resolved_route_map,
        )

    def target_of(self, label: str) -> str:
        return self.route_map.get(label, label)

    def fallback_label(self) -> str | None:
        """The label whose messages the fallback model serves (e.g. "chat" → base): in an evaluation, a
        fallback on such a message is the right answer."""
        return next((label for label, target in self.route_map.items() if target == self.fallback), None)


@dataclass(frozen=True)
class Decision:
    model: str
    """What answers: an adapter name or the base model's name."""
    label: str | None = None
    confidence: float | None = None
    margin: float | None = None
    scores: Mapping[str, float] = field(default_factory=dict)
    fallback_reason: str | None = None
    detail: str | None = None


def decide(scores: Mapping[str, float], config: PolicyConfig, adapters: Set[str]) -> Decision:
    """Pick the model for one message from its per-label scores, given the adapters registered now."""
    if not scores:
        return fallback(config, FallbackReason.NO_ROUTER, "the router has no labels")
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    label, confidence = ranked[0]
    margin = confidence - ranked[1][1] if len(ranked) > 1 else confidence
    explained = {"label": label, "confidence": confidence, "margin": margin, "scores": dict(scores)}
    if confidence < config.threshold:
        return fallback(
            config,
            FallbackReason.LOW_CONFIDENCE,
            f"top label {label!r} at {confidence:.2f} is below the threshold {config.threshold:.2f}",
            **explained,
        )
    if margin < config.min_margin:
        return fallback(
            config,
            FallbackReason.AMBIGUOUS,
            f"top two labels are {margin:.2f} apart, under the margin {config.min_margin:.2f}",
            **explained,
        )
    target = config.target_of(label)
    if target != config.base_model and target not in adapters:
        return fallback(
            config,
            FallbackReason.NO_ADAPTER,
            f"label {label!r} maps to {target!r}, which is not registered",
            **explained,
        )
    return Decision(model=target, **explained)


def fallback(config: PolicyConfig, reason: str, detail: str, **explained: object) -> Decision:
    return Decision(model=config.fallback, fallback_reason=reason, detail=detail, **explained)


def unmapped_labels(labels: list[str], config: PolicyConfig, adapters: Set[str]) -> list[str]:
    """Labels that would reach neither a registered adapter nor the base model (checked before a swap)."""
    return [
        label
        for label in labels
        if (target := config.target_of(label)) != config.base_model and target not in adapters
    ]
