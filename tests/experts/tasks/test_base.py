"""The shared pieces: the example record, the split, the seeded draw loop, JSONL files, fence stripping."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from experts.tasks import TaskExample, generate, read_jsonl, split_of, write_jsonl
from experts.tasks.base import strip_code_fences

EXAMPLE = TaskExample(task="math", prompt="what's 2+2", completion="2 + 2 = 4\nAnswer: 4", gold=4)


def numbered(rng: random.Random) -> TaskExample:
    value = rng.randrange(100_000)
    return TaskExample(task="toy", prompt=f"prompt {value}", completion=str(value), gold=value)


def test_messages_are_one_user_and_one_assistant_turn() -> None:
    assert EXAMPLE.messages() == [
        {"role": "user", "content": "what's 2+2"},
        {"role": "assistant", "content": "2 + 2 = 4\nAnswer: 4"},
    ]


def test_record_round_trips() -> None:
    record = EXAMPLE.to_record()
    assert record == {"task": "math", "messages": EXAMPLE.messages(), "gold": 4}
    assert TaskExample.from_record(json.loads(json.dumps(record))) == EXAMPLE


@pytest.mark.parametrize(
    "record",
    [
        {"task": "math", "messages": [{"role": "user", "content": "hi"}], "gold": 1},
        {
            "task": "math",
            "messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}],
        },
        {"task": "math", "messages": "not a list"},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
    ],
)
def test_from_record_refuses_a_malformed_record(record: dict) -> None:
    with pytest.raises(ValueError):
        TaskExample.from_record(record)


def test_split_of_is_sha256_of_the_prompt_mod_10() -> None:
    for prompt in ["What is 15% of 240?", "list customers in Berlin", "", "ünïcödé"]:
        value = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big")
        assert split_of(prompt) == ("eval" if value % 10 == 0 else "train")


def test_about_one_prompt_in_ten_is_eval() -> None:
    evals = sum(split_of(f"question number {i}") == "eval" for i in range(20_000))
    assert 1700 < evals < 2300


def test_generate_keeps_distinct_prompts_of_the_split_only() -> None:
    for split in ("train", "eval"):
        examples = generate(numbered, split, 300, seed=5)
        prompts = [e.prompt for e in examples]
        assert len(set(prompts)) == 300
        assert {split_of(p) for p in prompts} == {split}


def test_generate_is_reproducible_per_seed() -> None:
    assert generate(numbered, "train", 200, seed=1) == generate(numbered, "train", 200, seed=1)
    assert generate(numbered, "train", 200, seed=1) != generate(numbered, "train", 200, seed=2)


def test_generate_refuses_more_than_the_space_holds() -> None:
    def tiny(rng: random.Random) -> TaskExample:
        value = rng.randrange(20)
        return TaskExample(task="tiny", prompt=f"p{value}", completion="c", gold=None)

    with pytest.raises(ValueError, match="distinct train prompts") as caught:
        generate(tiny, "train", 100, seed=0)
    assert "ask for fewer" in str(caught.value)


def test_generate_checks_its_arguments() -> None:
    assert generate(numbered, "eval", 0, seed=0) == []
    with pytest.raises(ValueError, match="unknown split"):
        generate(numbered, "test", 1, seed=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n must be"):
        generate(numbered, "train", -1, seed=0)


def test_jsonl_round_trip(tmp_path: Path) -> None:
    examples = [
        EXAMPLE,
        TaskExample("extract", "json please: Anna Berg", '{"name": "Anna Berg"}', {"name": "Anna Berg"}),
    ]
    path = write_jsonl(examples, tmp_path / "sub" / "data.jsonl")
    assert read_jsonl(path) == examples
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2


def test_read_jsonl_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(EXAMPLE.to_record()) + "\n\n{not json\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"data.jsonl:3"):
        read_jsonl(path)


@pytest.mark.parametrize(
    ("text", "body"),
    [
        ("```sql\nSELECT 1;\n```", "SELECT 1;\n"),
        ('Here you go:\n```\n{"a": 1}\n```\nDone.', '{"a": 1}\n'),
        ('```json\n{"a": 1}', '{"a": 1}'),
        ("no fence at all", "no fence at all"),
    ],
)
def test_strip_code_fences(text: str, body: str) -> None:
    assert strip_code_fences(text) == body
