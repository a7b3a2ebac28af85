"""Training records to chat-templated text: the one place training and evaluation render prompts.

A prompt is rendered exactly as the service renders it (`router/serving/prompts.py`: the base model's chat
template with the generation prompt), so an adapter learns on the very text it is later served with. The
completion is the assistant's text followed by the template's end-of-turn token, which the engine stops on.

Accepted JSONL lines (blank lines are skipped, other keys are ignored):

- ``{"messages": [...]}`` — system / user / assistant turns; the last one is the assistant answer to learn.
  `experts.tasks` records (``{"task", "messages", "gold"}``) have this shape.
- ``{"prompt": str, "completion": str}`` — the prompt becomes one user message. A list of messages is also
  taken as the prompt, and ``[{"role": "assistant", ...}]`` as the completion (TRL's conversational shape).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

ROLES = ("system", "user", "assistant")
# Rendered as the assistant's answer to find what the template writes after it; no whitespace, since some
# templates trim message content.
_PROBE = "\u2063PROBE\u2063answer\u2063"


@dataclass(frozen=True)
class SftRecord:
    """One supervised example: the conversation so far and the assistant answer that should follow it."""

    messages: tuple[dict[str, str], ...]
    completion: str

    def conversation(self) -> list[dict[str, str]]:
        """The whole exchange, answer included."""
        return [*self.messages, {"role": "assistant", "content": self.completion}]


def load_sft_records(path: str | Path) -> list[SftRecord]:
    """Every record of a JSONL file; a bad line raises ValueError naming ``path:line``, and so does a file
    without records."""
    path = Path(path)
    records: list[SftRecord] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                records.append(parse_sft_record(json.loads(line)))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not valid JSON: {error.msg}") from None
            except ValueError as error:
                raise ValueError(f"{path}:{number}: {error}") from None
    if not records:
        raise ValueError(f"{path}: no training records (the file is empty)")
    return records


def parse_sft_record(record: object) -> SftRecord:
    if not isinstance(record, Mapping):
        raise ValueError(f"a record must be a JSON object, got {type(record).__name__}")
    has_messages, has_prompt = "messages" in record, "prompt" in record or "completion" in record
    if has_messages and has_prompt:
        raise ValueError("a record holds either 'messages' or 'prompt' + 'completion', not both")
    if has_messages:
        messages = _messages(record["messages"], "messages")
        if not messages or messages[-1]["role"] != "assistant":
            raise ValueError("the last of 'messages' must be the assistant answer to learn")
        return _record(messages[:-1], messages[-1]["content"])
    if has_prompt:
        if "prompt" not in record or "completion" not in record:
            raise ValueError("a prompt-completion record needs both 'prompt' and 'completion'")
        prompt, completion = record["prompt"], record["completion"]
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        if isinstance(completion, list):
            answer = _messages(completion, "completion")
            if [m["role"] for m in answer] != ["assistant"]:
                raise ValueError("a 'completion' list must hold exactly one assistant message")
            completion = answer[0]["content"]
        if not isinstance(completion, str):
            raise ValueError(f"'completion' must be a string, got {type(completion).__name__}")
        return _record(_messages(prompt, "prompt"), completion)
    raise ValueError(f"a record needs 'messages' or 'prompt' + 'completion'; got keys {sorted(record)}")


def _messages(value: object, field: str) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise ValueError(f"'{field}' must be a list of messages, got {type(value).__name__}")
    messages = []
    for index, message in enumerate(value):
        if not isinstance(message, Mapping):
            raise ValueError(f"{field}[{index}] must be an object with 'role' and 'content'")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise ValueError(f"{field}[{index}].role is {role!r}; expected one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise ValueError(f"{field}[{index}].content must be a string, got {type(content).__name__}")
        messages.append({"role": role, "content": content})
    return messages


def _record(prompt: list[dict[str, str]], completion: str) -> SftRecord:
    if not any(m["role"] == "user" for m in prompt):
        raise ValueError("the prompt has no user message")
    if prompt[-1]["role"] == "assistant":
        raise ValueError(
            "the prompt ends with an assistant message; the answer to learn must follow a user turn"
        )
    if not completion.strip():
        raise ValueError("the assistant answer is empty")
    return SftRecord(messages=tuple(prompt), completion=completion)


def end_of_turn_token(tokenizer: PreTrainedTokenizerBase) -> str:
    """The special token the chat template writes right after an assistant message (``<|im_end|>`` for
    SmolLM2): generation stops on it, so the model must learn to emit it. Raises ValueError when the template
    writes none, rather than guessing."""
    probe = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _PROBE}]
    text = _render(tokenizer, probe)
    at = text.find(_PROBE)
    if at < 0:
        raise ValueError("the chat template does not render the assistant message's content verbatim")
    after = text[at + len(_PROBE) :]
    special = set(tokenizer.all_special_tokens) | {
        added.content for added in tokenizer.added_tokens_decoder.values() if added.special
    }
    # Longest first, so a token is never taken for a shorter one it starts with.
    for token in sorted(special, key=len, reverse=True):
        if token and after.startswith(token):
            return token
    raise ValueError(
        f"the chat template writes {after[:40]!r} after an assistant message, which does not start with a "
        "special token; cannot tell where an answer ends"
    )


class ChatFormatter:
    """Renders records with one tokenizer's chat template, exactly as the service renders requests."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer
        self.end_of_turn = end_of_turn_token(tokenizer)
        end_of_turn_id = tokenizer.convert_tokens_to_ids(self.end_of_turn)
        # One token in, one id out; a list would mean the tokenizer took the token for several.
        if not isinstance(end_of_turn_id, int):
            raise TypeError(f"the tokenizer maps {self.end_of_turn!r} to {end_of_turn_id!r}, not to one id")
        self.end_of_turn_id = end_of_turn_id
        self._check_prompt_is_prefix()

    @classmethod
    def from_model_dir(cls, path: str | Path) -> ChatFormatter:
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(str(path)))

    def prompt(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The text the service feeds the engine for these messages (generation prompt included)."""
        return _render(self.tokenizer, [dict(m) for m in messages], add_generation_prompt=True)

    def completion(self, answer: str) -> str:
        return answer + self.end_of_turn

    def prompt_completion(self, record: SftRecord) -> dict[str, str]:
        """One row of a prompt-completion dataset, both sides already rendered: the trainer must not apply
        the chat template again."""
        return {"prompt": self.prompt(record.messages), "completion": self.completion(record.completion)}

    def dataset_rows(self, records: Iterable[SftRecord]) -> list[dict[str, str]]:
        return [self.prompt_completion(r) for r in records]

    def _check_prompt_is_prefix(self) -> None:
        # prompt + completion should read like the template's own rendering of the finished conversation;
        # some templates render history differently (e.g. dropping reasoning), which is worth a warning.
        record = SftRecord(messages=({"role": "user", "content": "hi"},), completion=_PROBE)
        ours = self.prompt(record.messages) + self.completion(record.completion)
        full = _render(self.tokenizer, record.conversation())
        if not full.startswith(ours):
            logger.warning(
                "the chat template renders a finished conversation differently from prompt + answer + %s; "
                "training follows the served prompt",
                self.end_of_turn,
            )


def _render(
    tokenizer: PreTrainedTokenizerBase,
    conversation: list[dict[str, str]],
    *,
    add_generation_prompt: bool = False,
) -> str:
    """The chat template's text for ``conversation``; untokenized, so always a string for one conversation."""
    text = tokenizer.apply_chat_template(
        conversation, tokenize=False, add_generation_prompt=add_generation_prompt
    )
    if not isinstance(text, str):
        raise TypeError(f"the chat template rendered {type(text).__name__}, not text")
    return text
