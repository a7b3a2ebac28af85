"""What every expert task's generator guarantees: determinism, disjoint splits, enough distinct examples, gold
answers that score 1.0, and prompts that never copy the router's held-out messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from experts.tasks import TASKS, TaskExample, split_of, write_jsonl
from tests.experts.tasks.conftest import EXPERT_TASKS, N_EVAL, N_TRAIN

HELDOUT = Path(__file__).resolve().parents[3] / "router" / "defaults" / "intents_heldout.yaml"


@pytest.mark.parametrize("name", EXPERT_TASKS)
def test_same_seed_gives_the_same_bytes(name: str, tmp_path: Path, train_sets: dict) -> None:
    again = TASKS[name].examples("train", N_TRAIN, seed=0)
    assert again == train_sets[name]
    first = write_jsonl(train_sets[name], tmp_path / "a.jsonl").read_bytes()
    assert write_jsonl(again, tmp_path / "b.jsonl").read_bytes() == first


@pytest.mark.parametrize("name", EXPERT_TASKS)
def test_another_seed_gives_other_examples(name: str, eval_sets: dict) -> None:
    other = TASKS[name].examples("eval", N_EVAL, seed=1)
    assert [e.prompt for e in other] != [e.prompt for e in eval_sets[name]]


@pytest.mark.parametrize("name", EXPERT_TASKS)
def test_train_and_eval_never_share_a_prompt(name: str, train_sets: dict, eval_sets: dict) -> None:
    train = {e.prompt for e in train_sets[name]}
    evaluation = {e.prompt for e in eval_sets[name]}
    assert len(train) == N_TRAIN and len(evaluation) == N_EVAL
    assert not train & evaluation
    # sql splits on the gold query (its answers repeat across wordings), the others on the prompt.
    key = (lambda e: e.gold) if name == "sql" else (lambda e: e.prompt)
    assert {split_of(key(e)) for e in train_sets[name]} == {"train"}
    assert {split_of(key(e)) for e in eval_sets[name]} == {"eval"}
    if name == "sql":
        assert not {e.gold for e in train_sets[name]} & {e.gold for e in eval_sets[name]}


@pytest.mark.parametrize("name", EXPERT_TASKS)
def test_examples_are_well_formed(name: str, train_sets: dict) -> None:
    for example in train_sets[name]:
        assert isinstance(example, TaskExample) and example.task == name
        assert example.prompt.strip() == example.prompt and example.prompt
        assert example.completion.strip() == example.completion and example.completion


@pytest.mark.parametrize("name", EXPERT_TASKS)
def test_gold_completion_scores_one(name: str, train_sets: dict, eval_sets: dict) -> None:
    task = TASKS[name]
    # One example per distinct completion keeps the SQL executions down; scoring is per completion anyway.
    distinct = {e.completion: e for e in train_sets[name] + eval_sets[name]}
    assert all(task.score(example, example.completion) == 1.0 for example in distinct.values())


@pytest.mark.parametrize("name", EXPERT_TASKS)
def test_a_very_different_answer_scores_zero(name: str, eval_sets: dict) -> None:
    task = TASKS[name]
    for example in eval_sets[name][:50]:
        assert task.score(example, "I'm sorry, I can't help with that.") == 0.0


def test_prompts_never_copy_the_routers_heldout_messages(train_sets: dict, eval_sets: dict) -> None:
    heldout = yaml.safe_load(HELDOUT.read_text())["intents"]
    messages = {text.strip().casefold() for texts in heldout.values() for text in texts}
    prompts = [e.prompt for name in EXPERT_TASKS for e in train_sets[name] + eval_sets[name]]
    prompts += [e.prompt for e in TASKS["chat"].examples("eval", 60)]
    assert not {p.strip().casefold() for p in prompts} & messages
