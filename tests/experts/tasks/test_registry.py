"""The task registry: the four tasks, lookup by name, and the error that lists what exists."""

from __future__ import annotations

import pytest

from experts.tasks import TASKS, Task, UnknownTaskError, get_task


def test_the_four_tasks_are_registered_under_their_names() -> None:
    assert list(TASKS) == ["sql", "math", "extract", "chat"]
    for name, task in TASKS.items():
        assert isinstance(task, Task)
        assert task.name == name
        assert get_task(name) is task


def test_only_chat_has_no_expert() -> None:
    assert {name for name, task in TASKS.items() if not task.has_expert} == {"chat"}


def test_unknown_task_lists_the_known_ones() -> None:
    with pytest.raises(UnknownTaskError) as caught:
        get_task("poetry")
    assert str(caught.value) == "unknown task 'poetry'; known tasks: sql, math, extract, chat"
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, ValueError)
