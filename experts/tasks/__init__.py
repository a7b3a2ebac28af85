"""Seeded task data and code-checked scorers for the default experts (`sql`, `math`, `extract`) and for
general chat (`chat`, served by the base model)."""

from __future__ import annotations

from experts.tasks.arithmetic import MathTask
from experts.tasks.base import (
    EVAL_MODULUS,
    SPLITS,
    Split,
    Task,
    TaskExample,
    generate,
    read_jsonl,
    split_of,
    write_jsonl,
)
from experts.tasks.chat import ChatTask
from experts.tasks.extract import ExtractTask
from experts.tasks.sql import SqlTask

TASKS: dict[str, Task] = {task.name: task for task in (SqlTask(), MathTask(), ExtractTask(), ChatTask())}


class UnknownTaskError(KeyError, ValueError):
    """No task by that name; the message lists the known ones."""

    def __str__(self) -> str:
        # KeyError would show the repr of its argument, quotes and all.
        return str(self.args[0]) if self.args else ""


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None


__all__ = [
    "EVAL_MODULUS",
    "SPLITS",
    "TASKS",
    "ChatTask",
    "ExtractTask",
    "MathTask",
    "Split",
    "SqlTask",
    "Task",
    "TaskExample",
    "UnknownTaskError",
    "generate",
    "get_task",
    "read_jsonl",
    "split_of",
    "write_jsonl",
]
