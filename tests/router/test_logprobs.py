"""Logprobs in OpenAI's shapes from the real engine: the same tokens and numbers streamed or not, for chat
and text completions."""

from __future__ import annotations

import math

import openai
import pytest

from router.settings import DEFAULT_BASE_MODEL
from tests.router.service_checks import QUESTION

TOP = 3


@pytest.mark.parametrize("model", [DEFAULT_BASE_MODEL, "alpha"])
def test_chat_logprobs_match_between_stream_and_not(client: openai.OpenAI, model: str) -> None:
    ask = {"model": model, "messages": QUESTION, "temperature": 0, "max_tokens": 12, "logprobs": True}
    whole = client.chat.completions.create(**ask, top_logprobs=TOP).choices[0]
    tokens = whole.logprobs.content
    assert "".join(t.token for t in tokens) == whole.message.content
    assert bytes(b for t in tokens for b in t.bytes).decode() == whole.message.content
    for token in tokens:
        assert len(token.top_logprobs) == TOP
        # Greedy: the chosen token is the most likely one, and the list runs from most likely down.
        assert token.top_logprobs[0].token == token.token
        assert math.isclose(token.top_logprobs[0].logprob, token.logprob, abs_tol=1e-4)
        assert [t.logprob for t in token.top_logprobs] == sorted(
            (t.logprob for t in token.top_logprobs), reverse=True
        )
        assert token.logprob <= 0
    streamed = [
        token
        for chunk in client.chat.completions.create(**ask, top_logprobs=TOP, stream=True)
        if chunk.choices and chunk.choices[0].logprobs
        for token in chunk.choices[0].logprobs.content
    ]
    assert [t.model_dump() for t in streamed] == [t.model_dump() for t in tokens]
    bare = client.chat.completions.create(**ask).choices[0].logprobs.content
    assert [(t.token, t.logprob, t.top_logprobs) for t in bare] == [(t.token, t.logprob, []) for t in tokens]
    assert client.chat.completions.create(**{**ask, "logprobs": False}).choices[0].logprobs is None


def test_completion_logprobs_match_between_stream_and_not(client: openai.OpenAI) -> None:
    ask = {
        "model": DEFAULT_BASE_MODEL,
        "prompt": "The capital of France is",
        "temperature": 0,
        "max_tokens": 8,
    }
    whole = client.completions.create(**ask, logprobs=TOP).choices[0]
    logprobs = whole.logprobs
    assert "".join(logprobs.tokens) == whole.text
    assert logprobs.text_offset == [
        sum(len(t) for t in logprobs.tokens[:i]) for i in range(len(logprobs.tokens))
    ]
    for token, logprob, top in zip(
        logprobs.tokens, logprobs.token_logprobs, logprobs.top_logprobs, strict=True
    ):
        assert top[token] == logprob and TOP <= len(top) <= TOP + 1
    chunks = [
        c.choices[0].logprobs
        for c in client.completions.create(**ask, logprobs=TOP, stream=True)
        if c.choices
    ]
    streamed = {key: [v for c in chunks if c for v in getattr(c, key)] for key in logprobs.model_dump()}
    assert streamed == logprobs.model_dump()
