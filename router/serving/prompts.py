"""Chat messages to token ids with the base model's own chat template (shared by every adapter)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lora_registry import GenerationDefaults
from router.protocol import ChatMessage

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


class PromptRenderer:
    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self._tokenizer = tokenizer

    @classmethod
    def from_model_dir(cls, path: Path) -> PromptRenderer:
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(str(path)))

    @staticmethod
    def with_defaults(
        messages: list[ChatMessage], defaults: GenerationDefaults | None
    ) -> list[dict[str, str]]:
        """The adapter's system prompt applies unless the client sent its own."""
        rendered = [{"role": m.role, "content": m.text} for m in messages]
        if defaults and defaults.system_prompt and not any(m.role == "system" for m in messages):
            rendered.insert(0, {"role": "system", "content": defaults.system_prompt})
        return rendered

    def render_chat(self, messages: list[dict[str, str]]) -> list[int]:
        text = self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.encode(text)

    def encode(self, text: str) -> list[int]:
        # The chat template already places every special token it wants.
        return self._tokenizer.encode(text, add_special_tokens=False)
