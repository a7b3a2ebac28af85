"""Chat messages to token ids with the base model's own chat template (shared by every adapter)."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lora_registry import GenerationDefaults
from router.protocol import ChatMessage

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


class PromptRenderer:
    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer
        # Requests render and tokenize here, as in vLLM's server: one at a time in one thread, off the event
        # loop. The tokenizer holds the interpreter lock while it runs, so more threads would not run at
        # once; but a burst of arrivals no longer stops the loop (and every stream it serves) for all of
        # their prompts in a row: it gets the lock back between two prompts at the latest.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prompts")

    @classmethod
    def from_model_dir(cls, path: Path, chat_template: Path | None = None) -> PromptRenderer:
        """The model's tokenizer; with ``chat_template`` (a Jinja file) in place of its own template."""
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path))
        if chat_template is not None:
            tokenizer.chat_template = chat_template.read_text()
        return cls(tokenizer)

    @staticmethod
    def with_defaults(
        messages: list[ChatMessage], defaults: GenerationDefaults | None
    ) -> list[dict[str, Any]]:
        """The messages as chat templates take them; the adapter's system prompt applies unless the client
        sent its own."""
        rendered = [_as_template_message(m) for m in messages]
        own = any(m.role in ("system", "developer") for m in messages)
        if defaults and defaults.system_prompt and not own:
            rendered.insert(0, {"role": "system", "content": defaults.system_prompt})
        return rendered

    def render_chat(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            messages,
            # A copy transformers can type: its list also takes functions, which a list of dicts is not.
            tools=None if tools is None else list(tools),
            tokenize=False,
            add_generation_prompt=True,
        )
        # Untokenized and one conversation: text, whatever else the call may return in other modes.
        if not isinstance(text, str):
            raise TypeError(f"the chat template rendered {type(text).__name__}, not text")
        return self.encode(text)

    async def render_chat_off_loop(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> list[int]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, self.render_chat, messages, tools)

    async def encode_off_loop(self, text: str) -> list[int]:
        return await asyncio.get_running_loop().run_in_executor(self._worker, self.encode, text)

    @cached_property
    def renders_tools(self) -> bool:
        """Whether the chat template shows the model the tools it is offered (many ignore them)."""
        probe = [{"role": "user", "content": "What is the weather in Paris?"}]
        tool = {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
        return self.render_chat(probe, [tool]) != self.render_chat(probe)

    def encode(self, text: str) -> list[int]:
        # The chat template already places every special token it wants.
        return self.tokenizer.encode(text, add_special_tokens=False)

    @cached_property
    def special_ids(self) -> frozenset[int]:
        return frozenset(self.tokenizer.all_special_ids)

    @lru_cache(maxsize=65536)  # noqa: B019 - one renderer lives as long as the service
    def token(self, token_id: int) -> tuple[str, list[int]]:
        """A token as OpenAI's logprobs name it: its text alone, and its bytes. A byte-level BPE token may
        hold part of a character (its text is then U+FFFD), so the bytes come from the vocabulary entry."""
        text = self.tokenizer.decode([token_id])
        # One sequence of ids decodes to one string (a list of sequences would give a list).
        if not isinstance(text, str):
            raise TypeError(f"decoding one token gave {type(text).__name__}, not text")
        piece = self.tokenizer.convert_ids_to_tokens(token_id)
        byte_of = _byte_of()
        if isinstance(piece, str) and all(ch in byte_of for ch in piece):
            return text, [byte_of[ch] for ch in piece]
        return text, list(text.encode())


@lru_cache(maxsize=1)
def _byte_of() -> dict[str, int]:
    """Byte-level BPE vocabularies (GPT-2's scheme) spell each byte as one printable character."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {char: byte for byte, char in bytes_to_unicode().items()}


def _as_template_message(message: ChatMessage) -> dict[str, Any]:
    # OpenAI's `developer` role is the system role by another name; templates know only `system`.
    role = "system" if message.role == "developer" else message.role
    rendered: dict[str, Any] = {"role": role, "content": message.text}
    if message.tool_calls:
        # Templates write arguments as JSON themselves (`| tojson`): hand them the object, as vLLM does.
        rendered["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.function.name, "arguments": _json_or_text(call.function.arguments)},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        rendered["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        rendered["name"] = message.name
    return rendered


def _json_or_text(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except json.JSONDecodeError:
        return arguments
