"""Server-sent events as OpenAI streams them: one JSON object per `data:` line, then `[DONE]`."""

from __future__ import annotations

from pydantic import BaseModel

from lora_registry import ApiError
from router.errors import error_response

SSE_DONE = "data: [DONE]\n\n"


def sse_event(payload: BaseModel) -> str:
    return f"data: {payload.model_dump_json(exclude_none=True)}\n\n"


def sse_error(exc: ApiError) -> str:
    return sse_event(error_response(exc.status_code, exc.message, param=exc.param, code=exc.code))
