"""The routing policy is pure: scores and registered adapters in, a decision with its reason out."""

from __future__ import annotations

import pytest

from router.routing.policy import Decision, FallbackReason, PolicyConfig, decide, unmapped_labels

BASE = "base-model"
CONFIG = PolicyConfig(threshold=0.5, min_margin=0.1, fallback=BASE, base_model=BASE, route_map={"chat": BASE})
ADAPTERS = {"sql", "math"}


def scores(**values: float) -> dict[str, float]:
    return values


def test_confident_label_goes_to_its_adapter() -> None:
    decision = decide(scores(sql=0.8, math=0.1, chat=0.1), CONFIG, ADAPTERS)
    assert decision.model == "sql"
    assert decision.label == "sql"
    assert decision.fallback_reason is None
    assert decision.confidence == pytest.approx(0.8)
    assert decision.margin == pytest.approx(0.7)
    assert decision.scores == {"sql": 0.8, "math": 0.1, "chat": 0.1}


def test_label_mapped_to_base_model_is_not_a_fallback() -> None:
    decision = decide(scores(sql=0.1, math=0.1, chat=0.8), CONFIG, ADAPTERS)
    assert decision == Decision(
        model=BASE,
        label="chat",
        confidence=0.8,
        margin=pytest.approx(0.7),
        scores={"sql": 0.1, "math": 0.1, "chat": 0.8},
    )


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        (scores(sql=0.45, math=0.30, chat=0.25), FallbackReason.LOW_CONFIDENCE),
        (scores(sql=0.52, math=0.46, chat=0.02), FallbackReason.AMBIGUOUS),
        (scores(extract=0.9, sql=0.05, chat=0.05), FallbackReason.NO_ADAPTER),
    ],
)
def test_unsure_or_unserved_decisions_fall_back_and_say_why(values: dict[str, float], reason: str) -> None:
    decision = decide(values, CONFIG, ADAPTERS)
    assert decision.model == BASE
    assert decision.fallback_reason == reason
    assert decision.detail
    assert decision.label == max(values, key=values.get)  # the explanation keeps what the router thought


def test_threshold_is_inclusive_and_margin_boundary() -> None:
    at_threshold = decide(scores(sql=0.5, math=0.3, chat=0.2), CONFIG, ADAPTERS)
    assert at_threshold.model == "sql"
    at_margin = decide(scores(sql=0.55, math=0.45, chat=0.0), CONFIG, ADAPTERS)
    assert at_margin.model == "sql"


def test_fallback_may_be_an_adapter() -> None:
    config = PolicyConfig(threshold=0.9, min_margin=0.0, fallback="math", base_model=BASE)
    decision = decide(scores(sql=0.6, chat=0.4), config, ADAPTERS)
    assert (decision.model, decision.fallback_reason) == ("math", FallbackReason.LOW_CONFIDENCE)


def test_single_label_router_has_full_margin() -> None:
    decision = decide(scores(sql=1.0), CONFIG, ADAPTERS)
    assert (decision.model, decision.margin) == ("sql", 1.0)


def test_no_scores_is_a_no_router_fallback() -> None:
    assert decide({}, CONFIG, ADAPTERS).fallback_reason == FallbackReason.NO_ROUTER


def test_unmapped_labels_are_those_reaching_neither_an_adapter_nor_the_base() -> None:
    assert unmapped_labels(["sql", "chat", "extract", "math"], CONFIG, ADAPTERS) == ["extract"]
    remapped = PolicyConfig(0.5, 0.1, BASE, BASE, route_map={"chat": BASE, "extract": "sql"})
    assert unmapped_labels(["sql", "chat", "extract"], remapped, ADAPTERS) == []
