"""``POST /v1/chat/completions`` and ``POST /v1/completions``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from router.api.deps import Admitting, Chat, Completions
from router.api.disconnect import ClientDisconnected, unless_disconnected
from router.protocol import ChatCompletionRequest, CompletionRequest, ErrorResponse
from router.serving.admission import Admission
from router.serving.generation import ServingResult

router = APIRouter(tags=["generation"])

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 404, 413, 429, 503)
}
CLIENT_CLOSED = 499


def _headers(result: ServingResult) -> dict[str, str]:
    # x-request-id is added to every response by RequestIdMiddleware.
    return result.target.headers()


async def _respond(
    request: Request, admission: Admission, work: Callable[[], Awaitable[ServingResult]]
) -> Response:
    # Admitted before any work (routing included), so an overloaded service answers 429 at once.
    ticket = admission.admit()
    try:
        result = await unless_disconnected(request, work())
    except ClientDisconnected:
        ticket.release()
        return Response(status_code=CLIENT_CLOSED)
    except BaseException:
        ticket.release()
        raise
    if result.stream is not None:
        stream = ticket.hold(result.stream)
        return StreamingResponse(stream, media_type="text/event-stream", headers=_headers(result))
    ticket.release()
    assert result.response is not None
    return JSONResponse(result.response.model_dump(mode="json"), headers=_headers(result))


@router.post("/v1/chat/completions", responses=ERRORS)
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request, chat: Chat, admission: Admitting
) -> Response:
    return await _respond(request, admission, lambda: chat.create(body))


@router.post("/v1/completions", responses=ERRORS)
async def create_completion(
    body: CompletionRequest, request: Request, completions: Completions, admission: Admitting
) -> Response:
    return await _respond(request, admission, lambda: completions.create(body))
