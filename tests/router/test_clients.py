"""Third-party clients as their users call them, against the real service: the `openai` SDK (sync, async,
streaming, raw responses), LangChain's `ChatOpenAI` (invoke, stream, structured output) and LlamaIndex's
`OpenAILike` (complete, stream, chat), each with `auto`, a pinned expert and the base model, on the keyless
setup `make serve` runs (any placeholder key) and on the shared service with keys."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
from langchain_openai import ChatOpenAI
from llama_index.core.llms import ChatMessage
from llama_index.llms.openai_like import OpenAILike
from pydantic import BaseModel, Field

from commands.process import ServiceProcess
from router.settings import DEFAULT_BASE_MODEL
from tests.service_config import USER_KEY

QUESTION = "What is the capital of France?"
MODELS = ["auto", "math", DEFAULT_BASE_MODEL]
TOKENS = 8


class City(BaseModel):
    """Bounded, so a constrained answer ends within a few tokens whatever the model."""

    city: str = Field(max_length=16)


@pytest.fixture(params=["keyless", "with keys"])
def setup(request: pytest.FixtureRequest) -> tuple[str, str]:
    """The service's URL and the key its users send: a placeholder on the keyless one, a real user key."""
    if request.param == "keyless":
        service: ServiceProcess = request.getfixturevalue("open_service")
        return f"{service.url}/v1", "unused"
    service = request.getfixturevalue("service")
    return f"{service.url}/v1", USER_KEY


def answered_by(model: str, name: str) -> bool:
    return name == model or (model == "auto" and name in ("math", "sql", "extract", DEFAULT_BASE_MODEL))


@pytest.mark.parametrize("model", MODELS)
def test_every_client_talks_to_every_kind_of_model(setup: tuple[str, str], model: str) -> None:
    url, key = setup
    sdk = openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=300)
    chain = ChatOpenAI(
        base_url=url, api_key=key, model=model, max_tokens=TOKENS, temperature=0, max_retries=0
    )
    index = OpenAILike(
        api_base=url, api_key=key, model=model, max_tokens=TOKENS, is_chat_model=True, context_window=2048
    )
    ask = {"model": model, "messages": [{"role": "user", "content": QUESTION}], "max_tokens": TOKENS}

    def sdk_create() -> str:
        reply = sdk.chat.completions.create(**ask)
        assert answered_by(model, reply.model) and reply.choices[0].message.content
        return reply.model

    def sdk_stream() -> str:
        chunks = list(sdk.chat.completions.create(**ask, stream=True, stream_options={"include_usage": True}))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert chunks[-1].usage.completion_tokens > 0
        return chunks[0].model

    def sdk_raw() -> str:
        raw = sdk.chat.completions.with_raw_response.create(**ask)
        reply = raw.parse()
        assert raw.headers["x-lora-adapter"] == (reply.model if reply.model != DEFAULT_BASE_MODEL else "none")
        return reply.model

    def sdk_async() -> str:
        async def once() -> str:
            async with openai.AsyncOpenAI(base_url=url, api_key=key, max_retries=0, timeout=300) as client:
                return (await client.chat.completions.create(**ask)).model

        return asyncio.run(once())

    def chain_invoke() -> str:
        message = chain.invoke(QUESTION)
        assert message.content
        return message.response_metadata["model_name"]

    def chain_stream() -> str:
        pieces = list(chain.stream(QUESTION))
        assert "".join(p.content for p in pieces)
        return model

    def chain_structured() -> str:
        bounded = ChatOpenAI(
            base_url=url, api_key=key, model=model, max_tokens=24, temperature=0, max_retries=0
        )
        answer = bounded.with_structured_output(City).invoke(f"{QUESTION} Answer in JSON.")
        assert isinstance(answer, City) and answer.city
        return model

    def index_complete() -> str:
        assert index.complete(QUESTION).text
        return model

    def index_stream_and_chat() -> str:
        assert "".join(piece.delta or "" for piece in index.stream_complete(QUESTION))
        reply = index.chat([ChatMessage(role="user", content=QUESTION)])
        assert reply.message.content
        return reply.raw.model

    calls: list[Callable[[], str]] = [
        sdk_create,
        sdk_stream,
        sdk_raw,
        sdk_async,
        chain_invoke,
        chain_stream,
        chain_structured,
        index_complete,
        index_stream_and_chat,
    ]
    # Together, so the engine batches them: a client's requests are checked, not the engine's speed.
    with ThreadPoolExecutor(len(calls)) as pool:
        names = dict(zip((c.__name__ for c in calls), pool.map(lambda call: call(), calls), strict=True))
    assert all(answered_by(model, name) for name in names.values()), names


def test_a_wrong_key_is_refused_through_every_client(service: ServiceProcess) -> None:
    url = f"{service.url}/v1"
    attempts: list[Callable[[], Any]] = [
        lambda: openai.OpenAI(base_url=url, api_key="lr-wrong", max_retries=0).models.list(),
        lambda: ChatOpenAI(base_url=url, api_key="lr-wrong", model="auto", max_retries=0).invoke(QUESTION),
        lambda: OpenAILike(api_base=url, api_key="lr-wrong", model="auto", max_retries=0).complete(QUESTION),
    ]
    for attempt in attempts:
        with pytest.raises(openai.AuthenticationError):
            attempt()
