"""The `math` task: step-by-step completions that are arithmetically right, and the last-Answer scorer."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from experts.tasks import TASKS, TaskExample
from experts.tasks.arithmetic import TEMPLATES, parse_answer

TASK = TASKS["math"]
EXAMPLE = TaskExample("math", "I had 24 apples and ate 9. How many are left?", "24 - 9 = 15\nAnswer: 15", 15)
NUMBER = r"-?\d+(?:\.\d{1,2})?"
STEP = re.compile(rf"^({NUMBER}) ([-+*/]) ({NUMBER}) = ({NUMBER})$")
ANSWER = re.compile(rf"^Answer: ({NUMBER})$")


def test_there_are_enough_templates() -> None:
    assert len(TEMPLATES) >= 20


def test_every_step_is_right_and_the_answer_is_the_gold(train_sets: dict) -> None:
    for example in train_sets["math"]:
        *steps, last = example.completion.split("\n")
        assert 1 <= len(steps) <= 3, example.completion
        results = []
        for line in steps:
            match = STEP.match(line)
            assert match, line
            a, op, b, c = match.groups()
            exact = {
                "+": Decimal.__add__,
                "-": Decimal.__sub__,
                "*": Decimal.__mul__,
                "/": Decimal.__truediv__,
            }
            assert exact[op](Decimal(a), Decimal(b)) == Decimal(c), line
            # Integers print without decimals; numbers stay moderate.
            for number in (a, b, c):
                assert not number.endswith(".00") and abs(Decimal(number)) < 10_000, line
            results.append(Decimal(c))
        answer = ANSWER.match(last)
        assert answer, last
        assert Decimal(answer.group(1)) == results[-1] == Decimal(str(example.gold))
        assert isinstance(example.gold, int) == (results[-1] == results[-1].to_integral_value())


def test_money_keeps_its_cents(train_sets: dict) -> None:
    completions = "\n".join(e.completion for e in train_sets["math"])
    assert re.search(r"\d\.\d0\b", completions), "some money amount like 7.50"
    assert re.search(r"\d\.\d[1-9]\b", completions)


@pytest.mark.parametrize(
    ("output", "value"),
    [
        ("Answer: 15", 15),
        ("24 - 9 = 15\nAnswer: 15", 15),
        ("answer: $1,234.50", 1234.5),
        ("Answer: 15.", 15),
        ("Answer: 15 apples", 15),
        ("Answer: -5", -5),
        ("Answer: $-5", -5),
        ("Answer: 0.75", 0.75),
        ("Answer: 3\nWait, recheck.\nAnswer: 7", 7),
        ("The answer is 15", None),
        ("Answer: unknown", None),
        ("", None),
    ],
)
def test_parse_answer(output: str, value: float | None) -> None:
    assert parse_answer(output) == value


def test_the_last_answer_counts() -> None:
    assert TASK.score(EXAMPLE, "Answer: 14\nNo wait.\n24 - 9 = 15\nAnswer: 15") == 1.0
    assert TASK.score(EXAMPLE, "Answer: 15\nNo wait.\nAnswer: 14") == 0.0


@pytest.mark.parametrize(
    ("output", "score"),
    [
        ("Answer: 15", 1.0),
        ("Answer: 15.000000", 1.0),
        ("Answer: $15.00", 1.0),
        ("Answer: 16", 0.0),
        ("Answer: 15.01", 0.0),
        ("15", 0.0),
        ("24 - 9 = 15", 0.0),
    ],
)
def test_score(output: str, score: float) -> None:
    assert TASK.score(EXAMPLE, output) == score


def test_decimal_gold_matches_within_tolerance() -> None:
    example = TaskExample("math", "3 pens at $2.45", "3 * 2.45 = 7.35\nAnswer: 7.35", 7.35)
    assert TASK.score(example, "Answer: $7.35") == 1.0
    assert TASK.score(example, "Answer: 7.3") == 0.0
