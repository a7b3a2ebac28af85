"""Checks the service tests share: an error in OpenAI's shape, the service still answering, waiting on it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import openai

from tests.service_config import USER_KEY, bearer

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
_UNSET: Any = object()


def assert_error(
    response: httpx.Response,
    status: int,
    code: str | None = None,
    *,
    param: str | None = _UNSET,
    error_type: str | None = None,
) -> dict[str, Any]:
    """The response is ``status`` with ``{"error": {...}}`` carrying a message (and the code, param and type
    asked for); returns the error object."""
    assert response.status_code == status, response.text[:500]
    error = response.json()["error"]
    assert error["message"]
    if code is not None:
        assert error["code"] == code, error
    if param is not _UNSET:
        assert error["param"] == param, error
    if error_type is not None:
        assert error["type"] == error_type, error
    return error


def still_serving(client: openai.OpenAI, model: str = "auto") -> None:
    reply = client.chat.completions.create(model=model, messages=QUESTION, max_tokens=2, temperature=0)
    assert reply.choices[0].message.content is not None


def registry_and_router(http: httpx.Client) -> tuple[dict[str, int], str]:
    """What must survive a refusal or a fault: registered adapters (name → id) and the live router."""
    adapters = {a["name"]: a["id"] for a in http.get("/v1/adapters").json()["data"]}
    return adapters, http.get("/v1/router").json()["version"]


def wait_for(condition: Callable[[], bool], within_s: float, every_s: float = 0.1) -> bool:
    """Poll ``condition`` until it holds or ``within_s`` passes; returns whether it held."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every_s)
    return True


@dataclass
class Outcome:
    """How one chat request ended, seen by its client."""

    ended: float  # time.monotonic()
    status: int
    events: list[Any]  # SSE payloads (``"[DONE]"`` as is) for a stream, else the one JSON body


def chat(url: str, body: dict[str, Any], key: str = USER_KEY) -> Outcome:
    """POST a chat completion and read it to the end, streamed or not."""
    with httpx.Client(base_url=url, headers=bearer(key), timeout=120) as user:
        if not body.get("stream"):
            response = user.post("/v1/chat/completions", json=body)
            return Outcome(time.monotonic(), response.status_code, [response.json()])
        events: list[Any] = []
        with user.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                # Refused before its first token (headers not sent yet): a plain JSON error, as unstreamed.
                return Outcome(time.monotonic(), response.status_code, [json.loads(response.read())])
            for line in response.iter_lines():
                if line.startswith("data: "):
                    data = line.removeprefix("data: ")
                    events.append(data if data == "[DONE]" else json.loads(data))
        return Outcome(time.monotonic(), response.status_code, events)
