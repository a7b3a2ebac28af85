"""The `extract` task: sentences with fixed fields per kind, and field-by-field scoring of JSON output."""

from __future__ import annotations

import json

import pytest

from experts.tasks import TASKS, TaskExample
from experts.tasks.extract import FIELDS, parse_json_object

TASK = TASKS["extract"]
GOLD = {
    "kind": "booking",
    "name": "Tom Hale",
    "date": "March 3",
    "time": "7:30 pm",
    "party_size": 4,
    "place": "Luigi's",
}
EXAMPLE = TaskExample(
    "extract",
    "json please: Table for 4 at Luigi's on March 3 at 7:30 pm for Tom Hale.",
    json.dumps(GOLD, separators=(", ", ": ")),
    GOLD,
)


def test_completion_is_the_gold_as_compact_json_in_field_order(train_sets: dict) -> None:
    for example in train_sets["extract"]:
        gold = example.gold
        assert list(gold) == list(FIELDS[gold["kind"]])
        assert example.completion == json.dumps(gold, separators=(", ", ": "), ensure_ascii=False)


def test_every_kind_appears_and_sometimes_omits_a_field(train_sets: dict) -> None:
    examples = train_sets["extract"]
    for kind in FIELDS:
        golds = [e.gold for e in examples if e.gold["kind"] == kind]
        assert len(golds) > 400
        assert any(None in gold.values() for gold in golds)
        assert sum(None not in gold.values() for gold in golds) > len(golds) / 3


def test_values_come_from_the_sentence(train_sets: dict) -> None:
    for example in train_sets["extract"]:
        for key, value in example.gold.items():
            if key == "kind" or value is None:
                continue
            if isinstance(value, str):
                assert value in example.prompt, (key, value, example.prompt)
            else:
                assert isinstance(value, int) and key in ("party_size", "quantity") and value > 0


def test_prompts_start_with_an_instruction_then_the_sentence(train_sets: dict) -> None:
    starts = {e.prompt.split(":")[0].split("?")[0] for e in train_sets["extract"]}
    assert len(starts) >= 12
    assert all("json" in e.prompt.lower().split("\n")[0][:60] for e in train_sets["extract"])


@pytest.mark.parametrize(
    "output",
    [
        EXAMPLE.completion,
        f"```json\n{EXAMPLE.completion}\n```",
        f"Here is the JSON:\n{json.dumps(GOLD, indent=2)}\nLet me know if you need more.",
        json.dumps({**GOLD, "party_size": "4", "name": "  tom   HALE ", "extra": "ignored"}),
        json.dumps(dict(reversed(list(GOLD.items())))),
    ],
)
def test_gold_scores_one_in_any_wrapping(output: str) -> None:
    assert TASK.score(EXAMPLE, output) == 1.0


def test_each_wrong_field_costs_its_share() -> None:
    fields = len(GOLD)
    assert TASK.score(EXAMPLE, json.dumps({**GOLD, "time": "8 pm"})) == pytest.approx((fields - 1) / fields)
    assert TASK.score(EXAMPLE, json.dumps({**GOLD, "party_size": 5, "place": None})) == pytest.approx(
        (fields - 2) / fields
    )
    missing = {k: v for k, v in GOLD.items() if k != "date"}
    assert TASK.score(EXAMPLE, json.dumps(missing)) == pytest.approx((fields - 1) / fields)


def test_null_fields_match_null_or_absent_values() -> None:
    gold = {"kind": "contact", "name": "Ann Lee", "email": "ann@x.io", "phone": None, "company": None}
    example = TaskExample("extract", "to json: Ann Lee, ann@x.io", json.dumps(gold), gold)
    assert (
        TASK.score(example, '{"kind": "contact", "name": "Ann Lee", "email": "ann@x.io", "phone": null}')
        == 1.0
    )
    assert TASK.score(example, json.dumps({**gold, "phone": ""})) == 1.0
    assert TASK.score(example, json.dumps({**gold, "company": "Acme"})) == pytest.approx(4 / 5)


def test_booleans_are_not_numbers() -> None:
    gold = {"kind": "order", "item": "desk lamp", "quantity": 1, "address": None, "name": None}
    example = TaskExample("extract", "to json: a desk lamp", json.dumps(gold), gold)
    assert TASK.score(example, json.dumps({**gold, "quantity": True})) == pytest.approx(4 / 5)


@pytest.mark.parametrize(
    "output",
    ['{"kind": "booking", "name": "Tom Hale"', "[1, 2, 3]", "kind: booking, name: Tom Hale", "", "{}"],
)
def test_invalid_or_empty_json_scores_zero(output: str) -> None:
    assert TASK.score(EXAMPLE, output) == 0.0


def test_parse_json_object_finds_the_first_object() -> None:
    assert parse_json_object('noise {"a": 1} {"b": 2}') == {"a": 1}
    assert parse_json_object('{broken} then {"ok": true}') == {"ok": True}
    assert parse_json_object('```json\n{"a": [1, {"b": 2}]}\n```') == {"a": [1, {"b": 2}]}
    assert parse_json_object("no json") is None
