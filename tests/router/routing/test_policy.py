"""The routing policy is pure: scores (and similarity) and registered adapters in, a decision with its reason
out; sub-intents add up to their adapter, and a conversation's turns hold the previous turn's adapter."""

from __future__ import annotations

from dataclasses import replace

import pytest

from router.routing.policy import (
    Decision,
    FallbackReason,
    PolicyConfig,
    Turn,
    decide,
    decide_conversation,
    unmapped_labels,
)

BASE = "base-model"
CONFIG = PolicyConfig(threshold=0.5, min_margin=0.1, fallback=BASE, base_model=BASE, route_map={"chat": BASE})
ADAPTERS = {"sql", "math"}


def scores(**values: float) -> Turn:
    return Turn(values)


def test_confident_label_goes_to_its_adapter() -> None:
    decision = decide(scores(sql=0.8, math=0.1, chat=0.1), CONFIG, ADAPTERS)
    assert decision.model == "sql"
    assert decision.label == "sql"
    assert decision.fallback_reason is None
    assert decision.confidence == pytest.approx(0.8)
    assert decision.margin == pytest.approx(0.7)
    assert decision.scores == {"sql": 0.8, "math": 0.1, "chat": 0.1}
    assert decision.target_scores == {"sql": 0.8, "math": 0.1, BASE: 0.1}


def test_label_mapped_to_base_model_is_not_a_fallback() -> None:
    decision = decide(scores(sql=0.1, math=0.1, chat=0.8), CONFIG, ADAPTERS)
    assert decision == Decision(
        model=BASE,
        label="chat",
        confidence=0.8,
        margin=pytest.approx(0.7),
        scores={"sql": 0.1, "math": 0.1, "chat": 0.8},
        target_scores={"sql": 0.1, "math": 0.1, BASE: 0.8},
    )


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        (scores(sql=0.45, math=0.30, chat=0.25), FallbackReason.LOW_CONFIDENCE),
        (scores(sql=0.52, math=0.46, chat=0.02), FallbackReason.AMBIGUOUS),
        (scores(extract=0.9, sql=0.05, chat=0.05), FallbackReason.NO_ADAPTER),
    ],
)
def test_unsure_or_unserved_decisions_fall_back_and_say_why(values: Turn, reason: str) -> None:
    decision = decide(values, CONFIG, ADAPTERS)
    assert decision.model == BASE
    assert decision.fallback_reason == reason
    assert decision.detail
    # the explanation keeps what the router thought
    assert decision.label == max(values.scores, key=values.scores.__getitem__)


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
    assert decide(Turn({}), CONFIG, ADAPTERS).fallback_reason == FallbackReason.NO_ROUTER


def test_unmapped_labels_are_those_reaching_neither_an_adapter_nor_the_base() -> None:
    assert unmapped_labels(["sql", "chat", "extract", "math"], CONFIG, ADAPTERS) == ["extract"]
    remapped = PolicyConfig(0.5, 0.1, BASE, BASE, route_map={"chat": BASE, "extract": "sql"})
    assert unmapped_labels(["sql", "chat", "extract"], remapped, ADAPTERS) == []


def test_sub_intents_add_up_to_their_adapter() -> None:
    # No single label reaches the threshold; the adapter their scores add up to does.
    turn = scores(**{"sql/joins": 0.35, "sql/counts": 0.3, "math": 0.2, "chat": 0.15})
    decision = decide(turn, CONFIG, ADAPTERS)
    assert (decision.model, decision.label) == ("sql", "sql/joins")
    assert decision.confidence == pytest.approx(0.65)
    assert decision.target_scores == pytest.approx({"sql": 0.65, "math": 0.2, BASE: 0.15})
    assert decision.margin == pytest.approx(0.45)


def test_route_map_may_name_a_group_or_one_sub_intent() -> None:
    config = PolicyConfig(0.5, 0.1, BASE, BASE, route_map={"sql": "math", "sql/chatty": BASE})
    assert [config.target_of(x) for x in ("sql/joins", "sql/chatty", "sql", "extract/x")] == [
        "math",
        BASE,
        "math",
        "extract",
    ]
    assert unmapped_labels(["sql/joins", "extract/x", "none", "none/weather"], config, ADAPTERS) == [
        "extract/x"
    ]


def test_out_of_scope_by_similarity_or_by_none_examples() -> None:
    confident = Turn({"sql": 0.9, "math": 0.05, "chat": 0.05}, similarity=0.3)
    far = decide(confident, CONFIG, ADAPTERS, oos_threshold=0.4)
    assert (far.model, far.fallback_reason) == (BASE, FallbackReason.OUT_OF_SCOPE)
    assert "0.30" in far.detail and far.similarity == 0.3
    near = decide(Turn(confident.scores, similarity=0.4), CONFIG, ADAPTERS, oos_threshold=0.4)
    assert near.model == "sql"  # the threshold itself is in scope
    off = PolicyConfig(0.5, 0.1, BASE, BASE, route_map={"chat": BASE}, out_of_scope=False)
    assert decide(confident, off, ADAPTERS, oos_threshold=0.4).model == "sql"
    taught = decide(scores(none=0.7, sql=0.2, chat=0.1), CONFIG, ADAPTERS)
    assert (taught.model, taught.label, taught.fallback_reason) == (BASE, "none", FallbackReason.OUT_OF_SCOPE)


STICKY = PolicyConfig(0.5, 0.1, BASE, BASE, route_map={"chat": BASE}, sticky_margin=0.3)


def test_a_turn_keeps_the_previous_adapter_unless_it_beats_it_by_the_margin() -> None:
    clear_sql = scores(sql=0.9, math=0.05, chat=0.05)
    vague = scores(math=0.45, sql=0.3, chat=0.25)  # would fall back on its own
    clear_math = scores(math=0.9, sql=0.05, chat=0.05)
    held = decide_conversation([clear_sql, vague], STICKY, ADAPTERS)
    assert (held.model, held.sticky, held.label) == ("sql", True, "math")
    assert decide(vague, STICKY, ADAPTERS).fallback_reason == FallbackReason.LOW_CONFIDENCE
    switched = decide_conversation([clear_sql, vague, clear_math], STICKY, ADAPTERS)
    assert (switched.model, switched.sticky) == ("math", False)
    # Three turns: the middle one held sql, so the third is judged against sql too.
    assert decide_conversation([clear_sql, vague, vague], STICKY, ADAPTERS).model == "sql"


def test_stickiness_needs_the_previous_adapter_to_still_be_there_and_can_be_off() -> None:
    clear_extract = scores(extract=0.9, sql=0.05, chat=0.05)
    vague = scores(math=0.4, extract=0.35, sql=0.15, chat=0.1)
    assert decide_conversation([clear_extract, vague], STICKY, ADAPTERS | {"extract"}).model == "extract"
    gone = decide(vague, STICKY, ADAPTERS, previous="extract")
    assert (gone.model, gone.sticky) == (BASE, False)
    assert decide_conversation([scores(sql=0.9, math=0.1), vague], CONFIG, ADAPTERS).sticky is False


def test_blend_composes_the_top_two_adapters_under_the_margin() -> None:
    blend = replace(CONFIG, blend=True)
    close = scores(sql=0.52, math=0.45, chat=0.03)
    decision = decide(close, blend, ADAPTERS)
    # 0.52 / 0.97 = 0.536 of the two scores, in steps of 0.05.
    assert decision.model == "sql:0.55+math:0.45" and decision.fallback_reason is None
    assert [(p.adapter, p.weight) for p in decision.blend] == [("sql", 0.55), ("math", 0.45)]
    assert "blended sql 0.55 + math 0.45" in (decision.detail or "")
    # Off, or with the base model among the top two, or with an unregistered second: the fallback.
    assert decide(close, CONFIG, ADAPTERS).fallback_reason == FallbackReason.AMBIGUOUS
    with_base = decide(scores(sql=0.52, chat=0.45, math=0.03), blend, ADAPTERS)
    assert (with_base.model, with_base.fallback_reason, with_base.blend) == (
        BASE,
        FallbackReason.AMBIGUOUS,
        (),
    )
    gone = decide(close, blend, {"sql"})
    assert (gone.model, gone.fallback_reason) == (BASE, FallbackReason.AMBIGUOUS)
    # A clear winner is routed as without blending.
    assert decide(scores(sql=0.8, math=0.1, chat=0.1), blend, ADAPTERS).model == "sql"
