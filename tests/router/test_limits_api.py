"""Request limits on the running service: refused before the engine sees anything, nothing else disturbed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import openai
import pytest

from commands.process import ServiceProcess
from router.settings import Settings
from tests.router.service_checks import QUESTION, assert_error, still_serving, wait_for
from tests.service_config import MAX_ADMITTED, USER_KEY, bearer

LIMIT = Settings().max_body_bytes


def test_oversized_body_is_413_without_being_read(
    service: ServiceProcess, http: httpx.Client, client: openai.OpenAI
) -> None:
    big = {"model": "auto", "messages": [{"role": "user", "content": "x" * (LIMIT + 1)}]}
    with httpx.Client(base_url=service.url, headers=bearer(USER_KEY), timeout=60) as user:
        response = user.post("/v1/chat/completions", json=big)
    assert_error(response, 413, "request_too_large", param=None, error_type="invalid_request_error")
    assert http.get("/health").json()["in_flight"] == 0
    still_serving(client)


def test_oversized_chunked_body_is_cut_off_at_the_limit(
    service: ServiceProcess, http: httpx.Client, client: openai.OpenAI
) -> None:
    chunk = b"x" * 65536

    def body() -> Iterator[bytes]:  # no Content-Length: the service has to count
        yield b'{"model": "auto", "messages": [{"role": "user", "content": "'
        for _ in range(LIMIT // len(chunk) + 2):
            yield chunk
        yield b'"}]}'

    with httpx.Client(base_url=service.url, headers=bearer(USER_KEY), timeout=60) as user:
        response = user.post(
            "/v1/chat/completions", content=body(), headers={"content-type": "application/json"}
        )
    assert_error(response, 413, "request_too_large", param=None)
    assert http.get("/health").json()["in_flight"] == 0
    still_serving(client)


def test_body_just_under_the_limit_is_read(http: httpx.Client) -> None:
    # A body near the limit passes the size check and meets the next one: the context length.
    near = {"model": "auto", "messages": [{"role": "user", "content": "x " * (LIMIT // 2 - 100)}]}
    response = http.post("/v1/chat/completions", json=near)
    assert_error(response, 400, "context_length_exceeded", param="messages")


def test_too_many_messages_is_400(http: httpx.Client, client: openai.OpenAI) -> None:
    limit = Settings().max_messages
    many = [{"role": "user", "content": "hi"}] * (limit + 1)
    response = http.post("/v1/chat/completions", json={"model": "auto", "messages": many, "max_tokens": 1})
    assert_error(response, 400, "too_many_messages", param="messages")
    assert f"at most {limit}" in response.json()["error"]["message"]
    # At the limit the count passes and the next check answers (512 turns overflow a 2048-token context).
    exactly = http.post(
        "/v1/chat/completions", json={"model": "auto", "messages": many[:limit], "max_tokens": 1}
    )
    assert_error(exactly, 400, "context_length_exceeded", param="messages")
    still_serving(client)


def wait_for_admitted(http: httpx.Client, count: int, within_s: float = 10.0) -> bool:
    return wait_for(lambda: http.get("/health").json()["admitted"] == count, within_s)


def test_past_the_admission_limit_a_fast_429_with_retry_after(
    service: ServiceProcess, http: httpx.Client, client: openai.OpenAI
) -> None:
    long = {"model": "alpha", "messages": QUESTION, "max_tokens": 1000, "ignore_eos": True, "stream": True}
    refused_before = http.get("/health").json()["refused_overloaded"]
    with (
        httpx.Client(base_url=service.url, headers=bearer(USER_KEY), timeout=60) as user,
        ExitStack() as streams,
    ):
        for _ in range(MAX_ADMITTED):
            response = streams.enter_context(user.stream("POST", "/v1/chat/completions", json=long))
            assert response.status_code == 200
        assert wait_for_admitted(http, MAX_ADMITTED)
        started = time.monotonic()
        refused = user.post("/v1/chat/completions", json={**long, "stream": False})
        assert time.monotonic() - started < 2.0  # refused at the door, not after queueing
        assert_error(refused, 429, "overloaded", param=None, error_type="rate_limit_error")
        assert refused.headers["retry-after"] == "1"
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="auto", messages=QUESTION, max_tokens=2)
        assert user.get("/v1/models").status_code == 200  # only generation is admitted
    # Every stream closed by its client gives its place back; then requests are accepted again.
    assert wait_for_admitted(http, 0)
    assert http.get("/health").json()["refused_overloaded"] == refused_before + 2
    still_serving(client)
