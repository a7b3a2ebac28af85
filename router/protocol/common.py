"""What every part of the wire format shares: the strict base of requests, token usage, the error body."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Request(BaseModel):
    # Strict: the JSON types the schema states, no coercion (a `false` seed or a `0` stream flag is refused).
    # Forbid: an unknown field is refused by name, not ignored.
    model_config = ConfigDict(extra="forbid", strict=True)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorInfo
