"""What every task shares: the example record, the task protocol, the train/eval split, the seeded draw loop.

A task draws candidate examples from a seeded `random.Random` and keeps the distinct ones whose prompt falls
in the wanted split. The split is a pure function of the prompt text, so a prompt can never be in both.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

Split = Literal["train", "eval"]

MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
SPLITS: tuple[Split, ...] = ("train", "eval")

# One prompt in ten goes to eval.
EVAL_MODULUS = 10


@dataclass(frozen=True)
class TaskExample:
    """One prompt with its gold answer; `gold` is what the task's scorer checks an output against."""

    task: str
    prompt: str
    completion: str
    gold: Any

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.prompt}, {"role": "assistant", "content": self.completion}]

    def to_record(self) -> dict[str, Any]:
        return {"task": self.task, "messages": self.messages(), "gold": self.gold}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TaskExample:
        """The inverse of `to_record`; refuses a record that is not one user turn and one assistant turn."""
        messages = record.get("messages")
        roles = [m.get("role") for m in messages] if isinstance(messages, list) else None
        if not isinstance(messages, list) or roles != ["user", "assistant"]:
            raise ValueError(f"record needs messages [user, assistant], got roles {roles}")
        if not isinstance(record.get("task"), str):
            raise ValueError("record needs a string 'task'")
        return cls(
            task=record["task"],
            prompt=messages[0]["content"],
            completion=messages[1]["content"],
            gold=record.get("gold"),
        )


@runtime_checkable
class Task(Protocol):
    """A task: seeded examples per split, and a scorer checking a model output against an example's gold."""

    name: str
    has_expert: bool  # False when the base model serves it and no adapter is trained

    def examples(self, split: Split, n: int, *, seed: int = 0) -> list[TaskExample]: ...

    def score(self, example: TaskExample, output: str) -> float:
        """A score in [0, 1]."""
        ...


def split_of(prompt: str, modulus: int = EVAL_MODULUS) -> Split:
    """The split of `prompt`: "eval" for one prompt in `modulus`, "train" for the rest. Stable across runs,
    machines and Python versions (sha256 of the text, not `hash()`, which is salted per process)."""
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    return "eval" if int.from_bytes(digest[:8], "big") % modulus == 0 else "train"


def check_split(split: str) -> Split:
    for known in SPLITS:
        if split == known:
            return known
    raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")


def generate(
    draw: Callable[[random.Random], TaskExample],
    split: Split,
    n: int,
    *,
    seed: int,
    max_draws: int | None = None,
    split_key: Callable[[TaskExample], str] = lambda example: example.prompt,
) -> list[TaskExample]:
    """The first `n` distinct-prompt examples of `split` that `draw` produces from `random.Random(seed)`.

    `split_key` picks the text whose hash decides the split: the prompt by default; a task whose answers
    repeat across many wordings splits on the answer, so that eval answers are never trained on.

    `draw` must use only the generator it is given (and no set iteration order of strings), so the same
    seed gives the same list byte for byte. Raises ValueError when `n` distinct prompts do not turn up within
    `max_draws` draws (by default 50 per eval example and 20 per train example, plus 1000): the generator's
    space is too small for the request.
    """
    check_split(split)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    # Eval keeps about one draw in EVAL_MODULUS, so it needs a larger budget per example than train.
    budget = max_draws if max_draws is not None else 1000 + n * (5 * EVAL_MODULUS if split == "eval" else 20)
    rng = random.Random(seed)
    seen: set[str] = set()
    picked: list[TaskExample] = []
    draws = 0
    while len(picked) < n:
        if draws >= budget:
            task = picked[0].task if picked else "task"
            raise ValueError(
                f"{task}: only {len(picked)} distinct {split} prompts after {draws} draws, {n} asked for; "
                "the generator cannot produce that many, ask for fewer"
            )
        example = draw(rng)
        draws += 1
        if example.prompt in seen or split_of(split_key(example)) != split:
            continue
        seen.add(example.prompt)
        picked.append(example)
    return picked


def write_jsonl(examples: Iterable[TaskExample], path: str | Path) -> Path:
    """One `to_record()` per line, UTF-8; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for example in examples:
            out.write(json.dumps(example.to_record(), ensure_ascii=False) + "\n")
    return path


def read_jsonl(path: str | Path) -> list[TaskExample]:
    """The examples `write_jsonl` wrote (blank lines skipped); a bad line is reported with its number."""
    examples: list[TaskExample] = []
    with Path(path).open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                examples.append(TaskExample.from_record(json.loads(line)))
            except (ValueError, TypeError, AttributeError, KeyError) as error:
                raise ValueError(f"{path}:{number}: not a task example: {error}") from error
    return examples


_FENCE = re.compile(r"```[^\n`]*\n?(.*?)(?:```|\Z)", re.DOTALL)


def strip_code_fences(text: str) -> str:
    """The body of the first ``` fenced block when there is one (a missing closing fence is tolerated), else
    the text unchanged: models often wrap an answer in a fence with a language tag."""
    match = _FENCE.search(text)
    return match.group(1) if match else text
