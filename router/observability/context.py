"""One id per HTTP request: taken from the client's ``X-Request-Id`` when it is a sane token, made up
otherwise; echoed in the response header and attached to every log line written while serving it.

A pure ASGI middleware, not Starlette's BaseHTTPMiddleware: the context variable it sets must stay visible
while a streaming body is produced, and StreamingResponse runs that body inside this call.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "x-request-id"
# Anything else (too long, spaces, control characters) would let a client forge or break log lines.
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

access_log = logging.getLogger("lora_router.access")


@dataclass
class RequestContext:
    request_id: str
    started: float = field(default_factory=time.perf_counter)
    # Filled in by serving for generation requests, so the access line says who answered and why.
    fields: dict[str, object] = field(default_factory=dict)


_current: ContextVar[RequestContext | None] = ContextVar("lora_router_request", default=None)


def current() -> RequestContext | None:
    return _current.get()


def annotate(**fields: object) -> None:
    """Add fields to the current request's access log line (no-op outside a request)."""
    if (context := _current.get()) is not None:
        context.fields.update(fields)


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = next((v.decode("latin-1") for k, v in scope["headers"] if k == HEADER.encode()), "")
        context = RequestContext(offered if _CLIENT_ID.fullmatch(offered) else uuid.uuid4().hex)
        token = _current.set(context)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[HEADER] = context.request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            access_log.info(
                "%s %s %d",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "http": {
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - context.started) * 1000, 2),
                    },
                    **context.fields,
                },
            )
            _current.reset(token)
