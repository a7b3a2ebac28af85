"""Chat and text completions through the official `openai` client against the real service and vLLM engine."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import openai
import pytest

from commands.process import ServiceProcess
from router.settings import DEFAULT_BASE_MODEL
from tests.service_config import USER_KEY, bearer

BASE = DEFAULT_BASE_MODEL
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def greedy(client: openai.OpenAI, model: str, messages: list[dict] = QUESTION, max_tokens: int = 24) -> str:
    reply = client.chat.completions.create(
        model=model, messages=messages, temperature=0, max_tokens=max_tokens
    )
    return reply.choices[0].message.content


def test_models_lists_base_auto_and_adapters(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list().data}
    assert {BASE, "auto", "alpha", "beta"} <= models.keys()
    assert models["alpha"].model_extra["parent"] == BASE
    assert models["auto"].model_extra["parent"] == BASE
    assert models[BASE].model_extra["parent"] is None


def test_base_model_answers_and_names_itself(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=BASE, messages=QUESTION, temperature=0, max_tokens=24
    )
    reply = raw.parse()
    assert "Paris" in reply.choices[0].message.content
    assert reply.model == BASE
    assert raw.headers["x-lora-adapter"] == "none"
    assert raw.headers["x-request-id"]  # tests/router/test_observability.py follows it into the log
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert reply.choices[0].finish_reason == "stop"


def test_pinned_adapter_answers_differently_from_base(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="alpha", messages=QUESTION, temperature=0, max_tokens=24
    )
    reply = raw.parse()
    assert reply.model == "alpha"
    assert raw.headers["x-lora-adapter"] == "alpha"
    routing = reply.model_extra["routing"]
    assert (routing["requested_model"], routing["mode"], routing["model"], routing["adapter"]) == (
        "alpha",
        "pinned",
        "alpha",
        "alpha",
    )
    assert routing["fallback_reason"] is None and routing["scores"] is None
    base_text = greedy(client, BASE)
    assert reply.choices[0].message.content != base_text
    assert greedy(client, "beta") not in (base_text, reply.choices[0].message.content)


def test_stream_matches_non_stream(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="alpha",
            messages=QUESTION,
            temperature=0,
            max_tokens=24,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].model_extra["routing"]["adapter"] == "alpha"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 3  # token by token, not one blob
    assert text == greedy(client, "alpha")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert any(c.choices and c.choices[0].finish_reason for c in chunks)


def test_same_greedy_text_alone_and_in_a_mixed_concurrent_batch(
    client: openai.OpenAI, async_client: openai.AsyncOpenAI
) -> None:
    models = ["alpha", "beta", "gamma", BASE]
    # Fill every adapter slot of the engine first: a base-model token whose LoRA index is "none" must not
    # pick up whichever adapter sits in the last slot.
    for warm in ("sql", "math", "extract", "alpha"):
        greedy(client, warm, max_tokens=2)
    alone = {m: greedy(client, m, max_tokens=16) for m in set(models)}

    async def batch() -> list[str]:
        async def one(model: str) -> str:
            reply = await async_client.chat.completions.create(
                model=model, messages=QUESTION, temperature=0, max_tokens=16
            )
            return reply.choices[0].message.content

        return await asyncio.gather(*(one(m) for m in models * 3))

    together = asyncio.run(batch())
    assert together == [alone[m] for m in models * 3]
    assert len(set(alone.values())) == 4  # every adapter and the base answer differently


def test_n_seed_and_stop(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=BASE, messages=QUESTION, temperature=1.0, n=3, seed=7, max_tokens=12
    )
    assert [c.index for c in reply.choices] == [0, 1, 2]
    again = client.chat.completions.create(
        model=BASE, messages=QUESTION, temperature=1.0, n=3, seed=7, max_tokens=12
    )
    assert [c.message.content for c in again.choices] == [c.message.content for c in reply.choices]

    full = greedy(client, BASE)
    cut = client.chat.completions.create(
        model=BASE, messages=QUESTION, temperature=0, max_tokens=24, stop=[" Paris"]
    )
    assert cut.choices[0].message.content == full.split(" Paris")[0]
    assert cut.choices[0].finish_reason == "stop"


def test_adapter_generation_defaults_apply_and_requests_override_them(client: openai.OpenAI) -> None:
    # beta is seeded with max_tokens: 12.
    reply = client.chat.completions.create(model="beta", messages=QUESTION, temperature=0)
    assert reply.usage.completion_tokens <= 12
    longer = client.chat.completions.create(model="beta", messages=QUESTION, temperature=0, max_tokens=30)
    assert longer.usage.completion_tokens > 12


def test_unknown_model_is_404_listing_what_exists(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="no-such-adapter", messages=QUESTION)
    body = err.value.body
    assert body["code"] == "model_not_found" and body["param"] == "model"
    assert "alpha" in body["message"] and BASE in body["message"]


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
        ({"temperature": 3}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"n": 0}, "n"),
        ({"n": 99}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 5000}, "max_tokens"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"messages": [{"role": "user", "content": "word " * 2100}]}, "messages"),
    ],
)
def test_bad_requests_get_openai_shaped_400(http: httpx.Client, payload: dict, param: str) -> None:
    body = {"model": BASE, "messages": QUESTION, **payload}
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert error["message"]


def test_text_completions_stream_and_not(client: openai.OpenAI) -> None:
    reply = client.completions.create(
        model="alpha", prompt=["The capital of France is", "1, 2, 3,"], max_tokens=8, temperature=0
    )
    assert [c.index for c in reply.choices] == [0, 1]
    assert reply.model == "alpha"
    streamed = "".join(
        chunk.choices[0].text
        for chunk in client.completions.create(
            model="alpha", prompt="The capital of France is", max_tokens=8, temperature=0, stream=True
        )
        if chunk.choices
    )
    assert streamed == reply.choices[0].text


# 1500 tokens take far longer than the 5 s an aborted request may linger.
LONG = {"model": BASE, "messages": QUESTION, "max_tokens": 1500, "ignore_eos": True}


def wait_for_in_flight(http: httpx.Client, count: int, within_s: float = 5.0) -> int:
    deadline = time.monotonic() + within_s
    while (seen := http.get("/health").json()["in_flight"]) != count and time.monotonic() < deadline:
        time.sleep(0.1)
    return seen


def test_streaming_client_going_away_aborts_the_engine_request(
    service: ServiceProcess, http: httpx.Client
) -> None:
    with (
        httpx.Client(base_url=service.url, timeout=60, headers=bearer(USER_KEY)) as c,
        c.stream("POST", "/v1/chat/completions", json={**LONG, "stream": True}) as response,
    ):
        lines = response.iter_lines()
        for _ in range(4):
            next(lines)
        assert http.get("/health").json()["in_flight"] == 1
    assert wait_for_in_flight(http, 0) == 0


def test_non_streaming_client_going_away_aborts_the_engine_request(
    service: ServiceProcess, http: httpx.Client
) -> None:
    def impatient_client() -> None:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{service.url}/v1/chat/completions", json=LONG, headers=bearer(USER_KEY), timeout=3)

    thread = threading.Thread(target=impatient_client)
    thread.start()
    assert wait_for_in_flight(http, 1) == 1
    thread.join()
    assert wait_for_in_flight(http, 0) == 0
