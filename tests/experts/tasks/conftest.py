"""Examples generated once per session and shared by the task tests (generation is deterministic)."""

from __future__ import annotations

import pytest

from experts.tasks import TASKS, TaskExample

EXPERT_TASKS = ["sql", "math", "extract"]
N_TRAIN = 2000
N_EVAL = 200


@pytest.fixture(scope="session")
def train_sets() -> dict[str, list[TaskExample]]:
    return {name: TASKS[name].examples("train", N_TRAIN, seed=0) for name in EXPERT_TASKS}


@pytest.fixture(scope="session")
def eval_sets() -> dict[str, list[TaskExample]]:
    return {name: TASKS[name].examples("eval", N_EVAL, seed=0) for name in EXPERT_TASKS}
