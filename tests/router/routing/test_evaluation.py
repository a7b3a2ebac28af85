"""The router's evaluation under the live policy, on made-up classifier outputs whose numbers are worked out
by hand below, and of the default router on its held-out messages."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from classifier import load_examples
from router.routing.evaluation import evaluate_router, score_policy
from router.routing.policy import FallbackReason, PolicyConfig, Turn
from router.routing.store import RouterStore

HELDOUT = Path(__file__).parents[3] / "router" / "defaults" / "intents_heldout.yaml"

BASE = "base-model"
# Margin and out-of-scope rules off: only the threshold decides, so each row can be checked by eye.
CONFIG = PolicyConfig(threshold=0.5, min_margin=0.0, fallback=BASE, base_model=BASE, route_map={"chat": BASE})
ADAPTERS = {"math", "sql"}
# true label, probabilities (chat, math, sql)      -> top target, its probability
CASES = [
    ("sql", (0.10, 0.10, 0.80)),  # sql  0.80  right
    ("sql", (0.20, 0.50, 0.30)),  # math 0.50  wrong
    ("math", (0.10, 0.60, 0.30)),  # math 0.60  right
    ("chat", (0.90, 0.05, 0.05)),  # base 0.90  right (chat maps to the base model)
    ("chat", (0.45, 0.20, 0.35)),  # base 0.45  right
    ("math", (0.20, 0.20, 0.60)),  # sql  0.60  wrong
]
TRUE = [label for label, _ in CASES]
TURNS = [Turn(dict(zip(("chat", "math", "sql"), p, strict=True))) for _, p in CASES]


def at(threshold: float, **changes: object) -> PolicyConfig:
    return replace(CONFIG, threshold=threshold, **changes)  # type: ignore[arg-type]


def test_threshold_zero_routes_everything() -> None:
    score = score_policy(TRUE, TURNS, at(0.0), ADAPTERS)
    assert (score.fallback_rate, score.fallback_reasons) == (0.0, {})
    assert score.accuracy_when_routed == score.accuracy_with_fallback == pytest.approx(4 / 6)


def test_a_fallback_is_right_only_for_what_the_fallback_model_serves() -> None:
    # 0.5: only message 5 (0.45) falls back; it is chat, which the base model serves, so it stays right.
    score = score_policy(TRUE, TURNS, at(0.5), ADAPTERS)
    assert score.fallback_rate == pytest.approx(1 / 6)
    assert score.fallback_reasons == {FallbackReason.LOW_CONFIDENCE: 1}
    assert score.accuracy_when_routed == pytest.approx(3 / 5)
    assert score.accuracy_with_fallback == pytest.approx(4 / 6)
    # 0.7: messages 1 and 4 are routed, both right; of the 4 fallbacks only message 5 is chat.
    score = score_policy(TRUE, TURNS, at(0.7), ADAPTERS)
    assert (score.fallback_rate, score.accuracy_when_routed) == (pytest.approx(4 / 6), 1.0)
    assert score.accuracy_with_fallback == pytest.approx(3 / 6)
    # 0.95: nothing routed; the two chat messages are right by falling back.
    score = score_policy(TRUE, TURNS, at(0.95), ADAPTERS)
    assert (score.fallback_rate, score.accuracy_when_routed) == (1.0, None)
    assert score.accuracy_with_fallback == pytest.approx(2 / 6)


def test_when_the_fallback_serves_no_label_every_fallback_is_wrong() -> None:
    unmapped = {"chat", "math", "sql"}
    scores = [score_policy(TRUE, TURNS, at(t, route_map={}), unmapped) for t in (0.5, 0.95)]
    assert [s.accuracy_with_fallback for s in scores] == [pytest.approx(3 / 6), 0.0]


def test_the_live_rules_beyond_the_threshold_count() -> None:
    # A close second target and an unregistered adapter fall back too, and the score says so.
    score = score_policy(TRUE, TURNS, at(0.0, min_margin=0.25), {"math"})
    # Messages 2 (0.2 apart) and 5 (0.1) are ambiguous; 1 and 6 go to sql, which is not registered.
    assert score.fallback_reasons == {FallbackReason.AMBIGUOUS: 2, FallbackReason.NO_ADAPTER: 2}
    # Right: message 3 (math, routed), messages 4 and 5 (chat: base, one routed, one by fallback).
    assert score.accuracy_with_fallback == pytest.approx(3 / 6)


def test_sub_intents_count_for_their_adapter() -> None:
    labels = ["billing/refund", "billing/invoice"]
    turns = [Turn({"billing/refund": 0.3, "billing/invoice": 0.6, "chat": 0.1})] * 2
    score = score_policy(labels, turns, at(0.5), {"billing"})
    assert score.accuracy_with_fallback == 1.0


def test_mismatched_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="one turn per label"):
        score_policy(TRUE, TURNS[:2], CONFIG, ADAPTERS)


def test_the_default_router_under_a_live_policy(default_router_dir: Path) -> None:
    classifier, _ = RouterStore(default_router_dir).load(
        RouterStore(default_router_dir).current_version() or ""
    )
    examples = load_examples(HELDOUT)
    config = PolicyConfig(
        threshold=0.5, min_margin=0.1, fallback=BASE, base_model=BASE, route_map={"chat": BASE}
    )
    report = evaluate_router(classifier, examples, config, {"sql", "math", "extract"}, thresholds=[0.0, 1.01])
    assert report.classifier.count == len(examples) and report.classifier.accuracy > 0.9
    assert report.policy.threshold == 0.5 and report.policy.accuracy_with_fallback > 0.85
    # Nothing falls back at 0 but what is out of scope; at 1.01 everything does, and only chat stays right.
    assert report.sweep[0].fallback_rate < report.sweep[1].fallback_rate == 1.0
    chat_share = sum(e.label == "chat" for e in examples) / len(examples)
    assert report.sweep[1].accuracy_with_fallback == pytest.approx(chat_share)
    data = json.loads(report.to_json())
    assert data["policy"]["threshold"] == 0.5 and len(data["threshold_sweep"]) == 2
    assert data["accuracy"] == report.classifier.accuracy
    text = report.to_text()
    assert "under the live policy (threshold 0.50)" in text and "     1.01    100.0%" in text
