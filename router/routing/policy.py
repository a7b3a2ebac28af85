"""The routing policy: classifier scores in, the model that answers out. Pure code, no I/O.

A label maps to a target, the model that answers it: the route map's entry for the label or for its group,
else the adapter named like its group (``billing/refund`` → ``billing``), and the scores of all labels of a
target add up before anything is decided. A message unlike anything the router was taught (out of scope),
one the router is unsure of (low confidence, a close second target), or a target without a live adapter
goes to the fallback model instead, and the decision says why: the router never fails a request for being
unsure. In a conversation, each user turn keeps the previous turn's target unless it clearly belongs
elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, TypedDict, Unpack

from classifier import OUT_OF_SCOPE_LABEL, Classification, group_of
from lora_registry import ComposePart
from lora_registry.composition import composition_name

if TYPE_CHECKING:
    from router.settings import Settings


class FallbackReason:
    OUT_OF_SCOPE = "out_of_scope"
    LOW_CONFIDENCE = "low_confidence"
    AMBIGUOUS = "ambiguous"
    NO_ADAPTER = "no_adapter"
    NO_ROUTER = "no_router"
    CLASSIFIER_ERROR = "classifier_error"


@dataclass(frozen=True)
class PolicyConfig:
    threshold: float
    """Below this summed probability of the top target, the message falls back."""
    min_margin: float
    """Below this gap between the top two targets, the message falls back."""
    fallback: str
    """Model answering whenever the router does not pick: the base model's name or an adapter's."""
    base_model: str
    route_map: Mapping[str, str] = field(default_factory=dict)
    """label or group → model name (an adapter or the base model); other groups go to the adapter so named."""
    out_of_scope: bool = True
    """Fall back when a message is less similar to every in-scope example than the router's threshold."""
    sticky_margin: float = 0.0
    """In a conversation, a turn leaves the previous turn's target only when it is routed on its own (no
    fallback) and its target's score beats the previous target's by at least this much; 0 turns
    stickiness off."""
    blend: bool = False
    """Under the margin, when the top two targets are both adapters: their composition, weighted by their
    scores, answers instead of the fallback."""

    @classmethod
    def from_settings(cls, settings: Settings) -> PolicyConfig:
        return cls(
            threshold=settings.router_threshold,
            min_margin=settings.router_min_margin,
            fallback=settings.resolved_router_fallback,
            base_model=settings.base_model_name,
            route_map=settings.resolved_route_map,
            out_of_scope=settings.router_out_of_scope,
            sticky_margin=settings.router_sticky_margin,
            blend=settings.router_blend,
        )

    def target_of(self, label: str) -> str:
        """The model a label's score counts for; for "none of these" examples, the fallback."""
        group = group_of(label)
        if label in self.route_map:
            return self.route_map[label]
        if group in self.route_map:
            return self.route_map[group]
        return self.fallback if group == OUT_OF_SCOPE_LABEL else group

    def fallback_label(self) -> str | None:
        """The label whose messages the fallback model serves (e.g. "chat" → base): in an evaluation, a
        fallback on such a message is the right answer."""
        return next((label for label, target in self.route_map.items() if target == self.fallback), None)


@dataclass(frozen=True)
class Turn:
    """What the classifier said about one user turn."""

    scores: Mapping[str, float]
    """Probability per label."""
    similarity: float | None = None
    """Cosine to the nearest in-scope training example; None when not known."""

    @classmethod
    def of(cls, labels: Sequence[str], classification: Classification) -> Turn:
        """The classifier's output for one turn, its probabilities keyed by ``labels``."""
        probabilities = classification.probabilities.tolist()
        return cls(dict(zip(labels, probabilities, strict=True)), classification.similarity)


@dataclass(frozen=True)
class Decision:
    model: str
    """What answers: an adapter name or the base model's name."""
    label: str | None = None
    """The most probable label of the top target (the winning sub-intent)."""
    confidence: float | None = None
    """The top target's summed probability."""
    margin: float | None = None
    scores: Mapping[str, float] = field(default_factory=dict)
    """Probability per label."""
    target_scores: Mapping[str, float] = field(default_factory=dict)
    """Summed probability per target (adapter or base model)."""
    similarity: float | None = None
    fallback_reason: str | None = None
    detail: str | None = None
    sticky: bool = False
    """The conversation's previous target answered, the turn not beating it by the sticky margin."""
    blend: tuple[ComposePart, ...] = ()
    """The top two adapters and their weights, when their composition answers (``model`` names it)."""


class _Explanation(TypedDict, total=False):
    """What a decision says of the classifier's view, whichever target it then picks."""

    label: str
    confidence: float
    margin: float
    scores: Mapping[str, float]
    target_scores: Mapping[str, float]
    similarity: float | None


def decide(
    turn: Turn,
    config: PolicyConfig,
    adapters: Set[str],
    *,
    oos_threshold: float | None = None,
    previous: str | None = None,
) -> Decision:
    """Pick the model for one user turn, given the adapters registered now and the model that answered the
    conversation's previous turn (``previous``).

    A turn keeps ``previous`` (sticky) unless its own decision routes it (no fallback) to a target whose
    score beats ``previous``'s by the sticky margin, or it is closest to the "none of these" examples: a
    short follow-up ("and for last year?", "make it shorter") looks like nothing on its own.
    """
    own = _decide_alone(turn, config, adapters, oos_threshold)
    if config.sticky_margin <= 0 or previous is None or previous == own.model:
        return own
    if previous != config.base_model and previous not in adapters:
        return own
    taught_none = own.label is not None and group_of(own.label) == OUT_OF_SCOPE_LABEL
    beats = (
        own.fallback_reason is None
        and (own.confidence or 0.0) - own.target_scores.get(previous, 0.0) >= config.sticky_margin
    )
    if beats or taught_none:
        return own
    why = own.detail or f"{own.model!r} does not beat it by {config.sticky_margin:.2f}"
    return replace(own, model=previous, sticky=True, fallback_reason=None, detail=f"kept {previous!r}: {why}")


def _decide_alone(
    turn: Turn, config: PolicyConfig, adapters: Set[str], oos_threshold: float | None
) -> Decision:
    if not turn.scores:
        return fallback(config, FallbackReason.NO_ROUTER, "the router has no labels")
    targets = target_scores(turn.scores, config)
    ranked = sorted(targets.items(), key=lambda item: item[1], reverse=True)
    target, confidence = ranked[0]
    margin = confidence - ranked[1][1] if len(ranked) > 1 else confidence
    label = max(
        (label for label in turn.scores if config.target_of(label) == target), key=turn.scores.__getitem__
    )
    explained: _Explanation = {
        "label": label,
        "confidence": confidence,
        "margin": margin,
        "scores": dict(turn.scores),
        "target_scores": targets,
        "similarity": turn.similarity,
    }
    if group_of(label) == OUT_OF_SCOPE_LABEL:
        return fallback(
            config,
            FallbackReason.OUT_OF_SCOPE,
            "closest to the examples of what no adapter answers",
            **explained,
        )
    if config.out_of_scope and turn.similarity is not None and oos_threshold is not None:
        if turn.similarity < oos_threshold:
            return fallback(
                config,
                FallbackReason.OUT_OF_SCOPE,
                f"similarity {turn.similarity:.2f} to the nearest example is below the router's "
                f"{oos_threshold:.2f}",
                **explained,
            )
    if confidence < config.threshold:
        return fallback(
            config,
            FallbackReason.LOW_CONFIDENCE,
            f"top target {target!r} at {confidence:.2f} is below the threshold {config.threshold:.2f}",
            **explained,
        )
    if margin < config.min_margin:
        why = f"top two targets are {margin:.2f} apart, under the margin {config.min_margin:.2f}"
        second, second_score = ranked[1] if len(ranked) > 1 else (target, 0.0)
        if config.blend and {target, second} <= adapters and second != target:
            parts = blend_parts((target, confidence), (second, second_score))
            weights = " + ".join(f"{part.adapter} {part.weight:g}" for part in parts)
            return Decision(
                model=composition_name(parts), blend=parts, detail=f"{why}: blended {weights}", **explained
            )
        return fallback(config, FallbackReason.AMBIGUOUS, why, **explained)
    if target != config.base_model and target not in adapters:
        return fallback(
            config,
            FallbackReason.NO_ADAPTER,
            f"label {label!r} maps to {target!r}, which is not registered",
            **explained,
        )
    return Decision(model=target, **explained)


def decide_conversation(
    turns: Sequence[Turn], config: PolicyConfig, adapters: Set[str], *, oos_threshold: float | None = None
) -> Decision:
    """The decision for a conversation's last user turn, each turn holding the one before it (sticky)."""
    if not turns:
        return fallback(config, FallbackReason.NO_ROUTER, "the conversation has no user message")
    previous: str | None = None
    decision = None
    for turn in turns:
        decision = decide(turn, config, adapters, oos_threshold=oos_threshold, previous=previous)
        previous = decision.model
    assert decision is not None
    return decision


# Blend weights move in steps of this size, so that nearby scores share one composition (each one the engine
# loads is an adapter of its own).
BLEND_STEP = 0.05


def blend_parts(top: tuple[str, float], second: tuple[str, float]) -> tuple[ComposePart, ComposePart]:
    """The two adapters weighted by their share of the two scores, in steps of BLEND_STEP."""
    steps = round(1 / BLEND_STEP)
    share = round(steps * top[1] / (top[1] + second[1])) if top[1] + second[1] > 0 else steps // 2
    return (
        ComposePart(adapter=top[0], weight=share / steps),
        ComposePart(adapter=second[0], weight=(steps - share) / steps),
    )


def target_scores(scores: Mapping[str, float], config: PolicyConfig) -> dict[str, float]:
    """Summed probability per target."""
    targets: dict[str, float] = {}
    for label, score in scores.items():
        target = config.target_of(label)
        targets[target] = targets.get(target, 0.0) + score
    return targets


def fallback(config: PolicyConfig, reason: str, detail: str, **explained: Unpack[_Explanation]) -> Decision:
    return Decision(model=config.fallback, fallback_reason=reason, detail=detail, **explained)


def unmapped_labels(labels: list[str], config: PolicyConfig, adapters: Set[str]) -> list[str]:
    """Labels that would reach neither a registered adapter nor the base model (checked before a swap)."""
    return [
        label
        for label in labels
        if group_of(label) != OUT_OF_SCOPE_LABEL
        and (target := config.target_of(label)) != config.base_model
        and target not in adapters
    ]
