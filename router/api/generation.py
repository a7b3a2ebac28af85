"""``POST /v1/chat/completions`` and ``POST /v1/completions``."""

from __future__ import annotations

from collections.abc import Awaitable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from router.api.deps import Chat, Completions
from router.api.disconnect import ClientDisconnected, unless_disconnected
from router.protocol import ChatCompletionRequest, CompletionRequest, ErrorResponse
from router.serving.generation import ServingResult

router = APIRouter(tags=["generation"])

ERRORS = {status: {"model": ErrorResponse} for status in (400, 404, 503)}
CLIENT_CLOSED = 499


def _headers(result: ServingResult) -> dict[str, str]:
    return {"x-request-id": result.request_id, **result.target.headers()}


async def _respond(request: Request, work: Awaitable[ServingResult]) -> Response:
    try:
        result = await unless_disconnected(request, work)
    except ClientDisconnected:
        return Response(status_code=CLIENT_CLOSED)
    if result.stream is not None:
        return StreamingResponse(result.stream, media_type="text/event-stream", headers=_headers(result))
    assert result.response is not None
    return JSONResponse(result.response.model_dump(mode="json"), headers=_headers(result))


@router.post("/v1/chat/completions", responses=ERRORS)
async def create_chat_completion(body: ChatCompletionRequest, request: Request, chat: Chat) -> Response:
    return await _respond(request, chat.create(body))


@router.post("/v1/completions", responses=ERRORS)
async def create_completion(body: CompletionRequest, request: Request, completions: Completions) -> Response:
    return await _respond(request, completions.create(body))
