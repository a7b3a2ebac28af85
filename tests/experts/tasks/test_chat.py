"""The `chat` task: keyword-checked general questions, eval split only."""

from __future__ import annotations

import pytest

from experts.tasks import TASKS, TaskExample
from experts.tasks.chat import ITEMS

TASK = TASKS["chat"]
CAPITAL = TaskExample("chat", "What is the capital of France?", "Paris", ["Paris"])
SPIDER = TaskExample("chat", "How many legs does a spider have?", "8", ["8", "eight"])


def test_items_are_many_distinct_and_have_keywords() -> None:
    assert len(ITEMS) >= 60
    assert len({question for question, _ in ITEMS}) == len(ITEMS)
    assert all(keywords and all(k.strip() for k in keywords) for _, keywords in ITEMS)


def test_eval_is_a_seeded_shuffle_of_every_item() -> None:
    everything = TASK.examples("eval", len(ITEMS))
    assert sorted(e.prompt for e in everything) == sorted(q for q, _ in ITEMS)
    assert TASK.examples("eval", 10) == everything[:10]
    assert TASK.examples("eval", 10, seed=0) == TASK.examples("eval", 10, seed=0)
    assert TASK.examples("eval", 10, seed=1) != TASK.examples("eval", 10, seed=0)
    assert all(TASK.score(e, e.completion) == 1.0 for e in everything)


def test_there_is_nothing_to_train() -> None:
    assert TASK.has_expert is False
    with pytest.raises(ValueError, match="no expert to train"):
        TASK.examples("train", 5)


def test_asking_for_more_than_exists_is_refused() -> None:
    with pytest.raises(ValueError, match=f"{len(ITEMS)} eval items"):
        TASK.examples("eval", len(ITEMS) + 1)


@pytest.mark.parametrize(
    ("example", "output", "score"),
    [
        (CAPITAL, "The capital of France is Paris.", 1.0),
        (CAPITAL, "PARIS, of course!", 1.0),
        (CAPITAL, "It's Lyon.", 0.0),
        (CAPITAL, "Parisian cafés are lovely.", 0.0),
        (SPIDER, "A spider has eight legs.", 1.0),
        (SPIDER, "Spiders have 8 legs.", 1.0),
        (SPIDER, "About 18 of them.", 0.0),
        (SPIDER, "", 0.0),
    ],
)
def test_a_keyword_must_appear_as_a_whole_word(example: TaskExample, output: str, score: float) -> None:
    assert TASK.score(example, output) == score
