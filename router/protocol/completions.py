"""``POST /v1/completions`` (OpenAI's legacy text completions): the request and the response."""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from router.protocol.common import Usage
from router.protocol.logprobs import CompletionLogprobs
from router.protocol.routing import RoutingInfo
from router.protocol.sampling import MAX_LOGPROBS, _SamplingFields


class CompletionRequest(_SamplingFields):
    prompt: str | list[str] = Field(
        json_schema_extra={
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]
        }
    )
    logprobs: int | None = Field(default=None, ge=0, le=MAX_LOGPROBS)
    # Refused unless left out, null or the value that changes nothing: see REFUSED in `sampling`.
    echo: Literal[False] | None = None
    suffix: None = None
    best_of: Literal[1] | None = None

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("prompt list must not be empty")
        return value

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else self.prompt

    @property
    def logprobs_count(self) -> int | None:
        return self.logprobs


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: str | None
    logprobs: CompletionLogprobs | None = None


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    routing: RoutingInfo | None = None
