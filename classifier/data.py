"""Training examples: loading them from a file and checking a set before any training starts.

Two file shapes are accepted, chosen by suffix:

``.yaml`` / ``.yml`` — one mapping from label to its example messages, under ``intents``::

    intents:
      sql:
        - "select all users who signed up this week"
        - "left join orders on customers"
      chat:
        - "hi, how are you?"

``.jsonl`` — one JSON object per line with string fields ``text`` and ``label`` (other fields are ignored,
blank lines are skipped)::

    {"text": "select all users who signed up this week", "label": "sql"}

Loading checks the shape only; `check_training_set` judges whether the examples can train a classifier.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from classifier.errors import TrainingDataError

# A label is an adapter-style name, optionally with a sub-intent after one slash ("billing/refund"): the
# part before the slash names the group (normally an adapter) that all its sub-intents' scores add up to.
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
LABEL_PATTERN = re.compile(rf"{_NAME}(?:/{_NAME})?")
SUB_INTENT_SEPARATOR = "/"
# Examples of what no adapter should answer ("none of these"): the router falls back on messages like them.
OUT_OF_SCOPE_LABEL = "none"
DEFAULT_MAX_BYTES = 2 * 1024 * 1024
# SetFit is meant for ~8 examples per label; 2 is the least that gives it a positive pair to learn from.
DEFAULT_MIN_PER_LABEL = 2
# Contrastive pairs grow with the example count; beyond a few thousand, CPU training takes hours.
DEFAULT_MAX_EXAMPLES = 5000
DEFAULT_MAX_TEXT_CHARS = 2000
YAML_SUFFIXES = (".yaml", ".yml")
JSONL_SUFFIX = ".jsonl"


@dataclass(frozen=True)
class Example:
    text: str
    label: str


def group_of(label: str) -> str:
    """The group a label's score counts towards: ``"billing"`` for ``"billing/refund"`` and ``"billing"``."""
    return label.partition(SUB_INTENT_SEPARATOR)[0]


def load_examples(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Example]:
    """Read examples from a ``.yaml``/``.yml`` or ``.jsonl`` file (shapes in the module docstring)."""
    suffix = path.suffix.lower()
    if suffix not in (*YAML_SUFFIXES, JSONL_SUFFIX):
        raise TrainingDataError(
            f"{path.name}: unsupported file type {suffix or '(none)'!r}; use .yaml, .yml or .jsonl", "path"
        )
    text = _read_text(path, max_bytes)
    if suffix == JSONL_SUFFIX:
        return _parse_jsonl(text, path.name)
    return _parse_yaml(text, path.name)


def check_training_set(
    examples: list[Example],
    *,
    min_per_label: int = DEFAULT_MIN_PER_LABEL,
    max_examples: int | None = DEFAULT_MAX_EXAMPLES,
    max_text_chars: int | None = DEFAULT_MAX_TEXT_CHARS,
) -> None:
    """Raise `TrainingDataError` on the first problem that would make training fail or mislead.

    ``max_examples`` and ``max_text_chars`` are resource limits; None turns one off.
    """
    if not examples:
        raise TrainingDataError("no training examples given", "examples")
    if max_examples is not None and len(examples) > max_examples:
        raise TrainingDataError(
            f"{len(examples)} training examples given; at most {max_examples} are accepted", "examples"
        )
    label_of_text: dict[str, tuple[int, str]] = {}
    for i, example in enumerate(examples):
        _check_label(example.label, f"examples[{i}].label")
        _check_text(example.text, f"examples[{i}].text", max_text_chars)
        key = example.text.strip()
        first = label_of_text.setdefault(key, (i, example.label))
        if first[1] != example.label:
            raise TrainingDataError(
                f"examples[{i}] has the same text as examples[{first[0]}] but label {example.label!r} "
                f"instead of {first[1]!r}; one text cannot teach two intents",
                f"examples[{i}].label",
            )
    counts = Counter(e.label for e in examples)
    if len(counts) < 2:
        raise TrainingDataError(
            f"at least 2 labels are needed to train a classifier; got {sorted(counts)}", "labels"
        )
    scarce = {label: n for label, n in sorted(counts.items()) if n < min_per_label}
    if scarce:
        listing = ", ".join(f"{label!r} has {n}" for label, n in scarce.items())
        raise TrainingDataError(
            f"every label needs at least {min_per_label} examples (about 8 work best): {listing}", "labels"
        )


def _check_label(label: Any, param: str) -> None:
    if not isinstance(label, str) or not LABEL_PATTERN.fullmatch(label):
        raise TrainingDataError(
            f"{param} is {label!r}; a label is 1-64 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, optionally followed by '/' and a sub-intent of the same form",
            param,
        )


def _check_text(text: Any, param: str, max_chars: int | None) -> None:
    if not isinstance(text, str):
        raise TrainingDataError(f"{param} must be a string, got {type(text).__name__}", param)
    if not text.strip():
        raise TrainingDataError(f"{param} is empty or only whitespace", param)
    if max_chars is not None and len(text) > max_chars:
        raise TrainingDataError(f"{param} has {len(text)} characters; the limit is {max_chars}", param)


def _read_text(path: Path, max_bytes: int) -> str:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise TrainingDataError(f"{path.name} is {size} bytes; at most {max_bytes} are accepted", "path")
        with path.open("rb") as f:
            # Read one byte past the limit: the file may have grown since stat().
            raw = f.read(max_bytes + 1)
    except OSError as exc:
        raise TrainingDataError(f"cannot read {str(path)!r}: {exc.strerror or exc}", "path") from None
    if len(raw) > max_bytes:
        raise TrainingDataError(f"{path.name} is over {max_bytes} bytes", "path")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TrainingDataError(f"{path.name} is not UTF-8 text (byte {exc.start})", "path") from None


class _NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without anchors/aliases: aliases let a small file expand into millions of examples."""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not accepted here", mark)
        return super().compose_node(parent, index)


def _parse_yaml(text: str, name: str) -> list[Example]:
    try:
        doc = yaml.load(text, Loader=_NoAliasLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise TrainingDataError(f"{name}: not valid YAML: {exc}", f"line {line}") from None
    except yaml.YAMLError as exc:
        raise TrainingDataError(f"{name}: not valid YAML: {exc}", "path") from None
    if not isinstance(doc, dict) or set(doc) != {"intents"}:
        found = sorted(map(str, doc)) if isinstance(doc, dict) else type(doc).__name__
        raise TrainingDataError(
            f"{name}: expected one key 'intents' mapping each label to its messages, got {found}",
            "intents",
        )
    intents = doc["intents"]
    if not isinstance(intents, dict) or not intents:
        raise TrainingDataError(f"{name}: 'intents' must map each label to a list of messages", "intents")
    examples = []
    for label, texts in intents.items():
        if not isinstance(label, str):
            # YAML reads unquoted yes/no/on/off as booleans and digits as numbers.
            raise TrainingDataError(
                f"{name}: label {label!r} is read as {type(label).__name__}, not text; quote it", "intents"
            )
        param = f"intents.{label}"
        if not isinstance(texts, list):
            raise TrainingDataError(f"{name}: {param} must be a list of messages", param)
        for i, item in enumerate(texts):
            if not isinstance(item, str):
                raise TrainingDataError(
                    f"{name}: {param}[{i}] is {type(item).__name__}, not text; quote it", f"{param}[{i}]"
                )
            examples.append(Example(text=item, label=label))
    return examples


def _parse_jsonl(text: str, name: str) -> list[Example]:
    examples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TrainingDataError(f"{name}: {where} is not valid JSON: {exc.msg}", where) from None
        if not isinstance(record, dict):
            raise TrainingDataError(f"{name}: {where} must be an object with 'text' and 'label'", where)
        for field in ("text", "label"):
            if not isinstance(record.get(field), str):
                raise TrainingDataError(f"{name}: {where} needs a string field {field!r}", f"{where}.{field}")
        examples.append(Example(text=record["text"], label=record["label"]))
    return examples
