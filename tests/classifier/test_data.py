"""Loading examples from YAML/JSONL; every way a file or training set is refused, with the param at fault."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from classifier import Example, TrainingDataError, check_training_set, group_of, load_examples

GOOD = [
    Example("select * from t", "sql"),
    Example("join a and b", "sql"),
    Example("hi", "chat"),
    Example("yo", "chat"),
]


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def refused(path: Path, param: str, *says: str, **kwargs: int) -> TrainingDataError:
    with pytest.raises(TrainingDataError) as caught:
        load_examples(path, **kwargs)
    assert caught.value.param == param
    for text in says:
        assert text in caught.value.message
    return caught.value


def test_yaml_file_loads_in_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "intents.yaml",
        "intents:\n  sql:\n    - select * from t\n    - 'join a and b'\n  chat:\n    - \"hi: there\"\n",
    )
    assert load_examples(path) == [
        Example("select * from t", "sql"),
        Example("join a and b", "sql"),
        Example("hi: there", "chat"),
    ]


def test_jsonl_file_loads_skipping_blank_lines_and_extra_fields(tmp_path: Path) -> None:
    lines = [
        json.dumps({"text": "select * from t", "label": "sql"}),
        "",
        json.dumps({"text": "hi", "label": "chat", "source": "ignored"}),
    ]
    path = write(tmp_path, "examples.jsonl", "\n".join(lines) + "\n")
    assert load_examples(path) == [Example("select * from t", "sql"), Example("hi", "chat")]


def test_yml_suffix_is_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "intents.YML", "intents:\n  a: [x]\n")
    assert load_examples(path) == [Example("x", "a")]


@pytest.mark.parametrize(
    ("content", "param", "says"),
    [
        ("intents:\n  sql: [a, b\n", "line 3", "not valid YAML"),
        ("- just\n- a list\n", "intents", "expected one key 'intents'"),
        ("intent:\n  sql: [a]\n", "intents", "got ['intent']"),
        ("intents:\n  sql: [a]\nextra: 1\n", "intents", "'extra'"),
        ("intents: []\n", "intents", "map each label"),
        ("intents:\n  sql: one text\n", "intents.sql", "must be a list"),
        ("intents:\n  sql:\n    - a\n    - 42\n", "intents.sql[1]", "int, not text"),
        ("intents:\n  yes: [a]\n", "intents", "read as bool"),
        ("intents:\n  sql: &s [a, b]\n  chat: *s\n", "line 3", "aliases"),
    ],
)
def test_malformed_yaml_is_refused(tmp_path: Path, content: str, param: str, says: str) -> None:
    refused(write(tmp_path, "intents.yaml", content), param, "intents.yaml", says)


@pytest.mark.parametrize(
    ("line", "param", "says"),
    [
        ("{not json", "line 2", "not valid JSON"),
        ('["a", "sql"]', "line 2", "must be an object"),
        ('{"text": "a"}', "line 2.label", "'label'"),
        ('{"text": 3, "label": "sql"}', "line 2.text", "'text'"),
    ],
)
def test_malformed_jsonl_is_refused(tmp_path: Path, line: str, param: str, says: str) -> None:
    good = json.dumps({"text": "hi", "label": "chat"})
    refused(write(tmp_path, "data.jsonl", f"{good}\n{line}\n"), param, "data.jsonl", says)


def test_file_over_max_bytes_is_refused_before_parsing(tmp_path: Path) -> None:
    # Not YAML at all: the size check must come first.
    path = write(tmp_path, "big.yaml", ":\n" * 600)
    refused(path, "path", "1200 bytes", max_bytes=1000)


def test_default_limit_is_two_megabytes(tmp_path: Path) -> None:
    line = json.dumps({"text": "x" * 1000, "label": "a"}) + "\n"
    path = write(tmp_path, "big.jsonl", line * (2 * 1024 * 1024 // len(line) + 1))
    refused(path, "path", "at most 2097152")


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("data.csv", "text,label\n", "unsupported file type '.csv'"),
        ("latin1.yaml", "intents:\n  a: [caf\xe9]\n".encode("latin-1"), "not UTF-8"),
    ],
)
def test_unreadable_files_are_refused(tmp_path: Path, name: str, content: str | bytes, says: str) -> None:
    refused(write(tmp_path, name, content), "path", says)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    refused(tmp_path / "nope.yaml", "path", "cannot read")


def test_good_training_set_passes() -> None:
    check_training_set(GOOD)


def check_refused(examples: list[Example], param: str, *says: str, **limits: int) -> None:
    with pytest.raises(TrainingDataError) as caught:
        check_training_set(examples, **limits)
    assert caught.value.param == param
    assert isinstance(caught.value, ValueError)
    for text in says:
        assert text in caught.value.message


def test_empty_set_is_refused() -> None:
    check_refused([], "examples", "no training examples")


def test_single_label_is_refused() -> None:
    check_refused(GOOD[:2], "labels", "at least 2 labels", "['sql']")


def test_label_with_too_few_examples_is_refused() -> None:
    check_refused([*GOOD, Example("what is 2+2", "math")], "labels", "at least 2 examples", "'math' has 1")
    check_refused(GOOD, "labels", "at least 3 examples", "'chat' has 2", "'sql' has 2", min_per_label=3)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_blank_text_is_refused(text: str) -> None:
    check_refused([*GOOD, Example(text, "chat")], "examples[4].text", "empty")


def test_text_over_limit_is_refused() -> None:
    check_refused([*GOOD, Example("x" * 51, "chat")], "examples[4].text", "51 characters", max_text_chars=50)


def test_too_many_examples_are_refused() -> None:
    check_refused(GOOD, "examples", "4 training examples", "at most 3", max_examples=3)


def test_limits_can_be_turned_off() -> None:
    check_training_set([*GOOD, Example("x" * 10_000, "chat")] * 2000, max_examples=None, max_text_chars=None)


@pytest.mark.parametrize("label", ["", "-sql", "has space", "a/b/c", "a/", "/b", "a/-b", "x" * 65, "émoji"])
def test_bad_label_is_refused(label: str) -> None:
    check_refused([Example("hi there", label), *GOOD], "examples[0].label", repr(label))


def test_sub_intent_labels_pass_and_name_their_group() -> None:
    examples = [
        *GOOD,
        Example("refund my last order", "billing/refund"),
        Example("money back", "billing/refund"),
    ]
    check_training_set(examples)
    assert [group_of(label) for label in ("billing/refund", "billing", "none")] == [
        "billing",
        "billing",
        "none",
    ]


def test_same_text_with_two_labels_is_refused() -> None:
    check_refused([*GOOD, Example(" hi ", "sql")], "examples[4].label", "examples[2]", "'chat'")


def test_non_string_text_is_refused() -> None:
    check_refused([*GOOD, Example(7, "chat")], "examples[4].text", "must be a string")  # type: ignore[arg-type]
