"""Conversation turns: what chat and route requests send, an assistant's tool calls among them."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from router.protocol.common import _Request


class TextPart(_Request):
    type: Literal["text"]
    text: str


class ToolCallFunction(_Request):
    name: str
    arguments: str
    """The arguments as a JSON text, as OpenAI sends them."""


class ToolCall(_Request):
    id: str
    type: Literal["function"]
    function: ToolCallFunction


class ChatMessage(_Request):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    """Assistant turns: the tools it called."""
    tool_call_id: str | None = None
    """Tool turns: the call this answers."""

    @model_validator(mode="after")
    def _content_where_needed(self) -> ChatMessage:
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError("content is required (an assistant turn may leave it out only with tool_calls)")
        if self.tool_calls is not None and self.role != "assistant":
            raise ValueError("only assistant turns carry tool_calls")
        if (self.tool_call_id is not None) != (self.role == "tool"):
            raise ValueError("tool turns, and only they, carry tool_call_id")
        return self

    @property
    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)
