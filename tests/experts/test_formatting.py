"""Records to chat-templated text: both record shapes, bad lines, and prompts identical to the service's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from experts.formatting import ChatFormatter, SftRecord, end_of_turn_token, load_sft_records
from experts.tasks import TASKS, write_jsonl
from router.protocol import ChatMessage
from router.serving.prompts import PromptRenderer


@pytest.fixture(scope="module")
def tokenizer(base_model_dir: Path):  # noqa: ANN201
    return AutoTokenizer.from_pretrained(str(base_model_dir))


@pytest.fixture(scope="module")
def formatter(tokenizer) -> ChatFormatter:  # noqa: ANN001
    return ChatFormatter(tokenizer)


def write_lines(path: Path, lines: list[object]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_both_record_shapes_and_task_examples_load(tmp_path: Path) -> None:
    example = TASKS["math"].examples("train", 1, seed=0)[0]
    path = write_lines(
        tmp_path / "mixed.jsonl",
        [
            {"prompt": "What is 2+2?", "completion": "4", "source": "ignored"},
            "",
            {
                "messages": [
                    {"role": "system", "content": "Answer tersely."},
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello."},
                    {"role": "user", "content": "Capital of France?"},
                    {"role": "assistant", "content": "Paris."},
                ]
            },
            example.to_record(),
            {
                "prompt": [{"role": "user", "content": "Hi"}],
                "completion": [{"role": "assistant", "content": "Yo"}],
            },
        ],
    )
    records = load_sft_records(path)
    assert records[0] == SftRecord(messages=({"role": "user", "content": "What is 2+2?"},), completion="4")
    assert [m["role"] for m in records[1].messages] == ["system", "user", "assistant", "user"]
    assert records[1].completion == "Paris."
    assert records[2].messages == ({"role": "user", "content": example.prompt},)
    assert records[2].completion == example.completion
    assert records[3] == SftRecord(messages=({"role": "user", "content": "Hi"},), completion="Yo")


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("{not json", "not valid JSON"),
        ([1, 2], "JSON object"),
        ({"text": "hello"}, "needs 'messages' or 'prompt'"),
        ({"prompt": "hi"}, "both 'prompt' and 'completion'"),
        ({"prompt": "hi", "completion": 3}, "'completion' must be a string"),
        ({"prompt": "hi", "completion": "  "}, "answer is empty"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "last of 'messages' must be the assistant"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "no user message"),
        (
            {"messages": [{"role": "tool", "content": "x"}, {"role": "assistant", "content": "y"}]},
            "role is 'tool'",
        ),
        ({"messages": [{"role": "user", "content": ["x"]}, {"role": "assistant", "content": "y"}]}, "string"),
        ({"messages": "hi"}, "list of messages"),
        ({"messages": [], "prompt": "hi", "completion": "x"}, "not both"),
    ],
)
def test_bad_line_is_refused_with_its_line_number(tmp_path: Path, line: object, says: str) -> None:
    path = write_lines(tmp_path / "bad.jsonl", [{"prompt": "fine", "completion": "ok"}, line])
    with pytest.raises(ValueError) as caught:
        load_sft_records(path)
    assert f"{path}:2:" in str(caught.value)
    assert says in str(caught.value)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "empty.jsonl", ["", "  "])
    with pytest.raises(ValueError, match="no training records"):
        load_sft_records(path)


def test_end_of_turn_token_comes_from_the_template(tokenizer, formatter: ChatFormatter) -> None:  # noqa: ANN001
    assert end_of_turn_token(tokenizer) == "<|im_end|>" == formatter.end_of_turn
    assert formatter.end_of_turn_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
    # It is what the engine stops on.
    assert formatter.end_of_turn_id == tokenizer.eos_token_id


def test_rendered_prompt_is_the_services_prompt(
    tmp_path: Path,
    tokenizer,
    formatter: ChatFormatter,  # noqa: ANN001
) -> None:
    path = write_jsonl(TASKS["sql"].examples("train", 3, seed=1), tmp_path / "sql.jsonl")
    multi_turn = SftRecord(
        messages=(
            {"role": "system", "content": "You write SQLite."},
            {"role": "user", "content": "Count customers."},
            {"role": "assistant", "content": "SELECT COUNT(*) FROM customers;"},
            {"role": "user", "content": "And orders?"},
        ),
        completion="SELECT COUNT(*) FROM orders;",
    )
    renderer = PromptRenderer(tokenizer)
    for record in [*load_sft_records(path), multi_turn]:
        row = formatter.prompt_completion(record)
        served = renderer.with_defaults([ChatMessage(**m) for m in record.messages], None)
        assert renderer.encode(row["prompt"]) == renderer.render_chat(served)
        assert row["prompt"].endswith("<|im_start|>assistant\n")
        assert row["completion"] == record.completion + "<|im_end|>"
        # The template's own rendering of the finished exchange starts with prompt + completion.
        full = tokenizer.apply_chat_template(record.conversation(), tokenize=False)
        assert full.startswith(row["prompt"] + row["completion"])
