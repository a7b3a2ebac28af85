"""Every OpenAI request field is honoured or refused by name: refusals, the metadata accepted and ignored,
and the sampling extras (penalties, logit_bias, top_k) changing what the real engine generates."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from transformers import AutoTokenizer

from router.settings import DEFAULT_BASE_MODEL
from tests.router.service_checks import QUESTION, assert_error

BASE = DEFAULT_BASE_MODEL
CHAT = {"model": BASE, "messages": QUESTION, "max_tokens": 2, "temperature": 0}
COMPLETION = {"model": BASE, "prompt": "The capital of France is", "max_tokens": 2, "temperature": 0}


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("audio", {"voice": "alloy", "format": "mp3"}, "audio output is not supported"),
        ("modalities", ["text", "audio"], 'only ["text"]'),
        ("prediction", {"type": "content", "content": "Paris"}, "predicted outputs"),
        ("reasoning_effort", "low", "do not reason"),
        ("verbosity", "low", "verbosity"),
        ("web_search_options", {}, "web search"),
        ("functions", [{"name": "f", "parameters": {}}], "send `tools`"),
        ("function_call", "auto", "send `tool_choice`"),
        ("store", True, "not stored"),
        ("service_tier", "flex", "one service tier"),
        ("surprise", 1, "unknown field"),
        ("guided_json", {"type": "object"}, "unknown field"),  # vLLM's old name: its own field is refused
    ],
)
def test_chat_fields_the_service_does_not_honour_are_400_by_name(
    http: httpx.Client, field: str, value: Any, says: str
) -> None:
    error = assert_error(http.post("/v1/chat/completions", json={**CHAT, field: value}), 400)
    assert error["param"].split(".")[0] == field
    assert says in error["message"] and field in error["message"]


@pytest.mark.parametrize(
    ("field", "value"), [("echo", True), ("suffix", " Bye."), ("best_of", 3), ("surprise", 1)]
)
def test_completion_fields_the_service_does_not_honour_are_400_by_name(
    http: httpx.Client, field: str, value: Any
) -> None:
    error = assert_error(http.post("/v1/completions", json={**COMPLETION, field: value}), 400)
    assert error["param"] == field


def test_harmless_metadata_and_neutral_values_are_accepted(client: openai.OpenAI) -> None:
    # What clients send along that changes nothing about the answer.
    reply = client.chat.completions.create(
        **CHAT,
        user="user-42",
        metadata={"team": "search"},
        store=False,
        service_tier="auto",
        modalities=["text"],
        parallel_tool_calls=True,
        stream_options=None,
        extra_body={"prompt_cache_key": "k", "safety_identifier": "s"},
    )
    assert reply.choices[0].message.content
    done = client.completions.create(**COMPLETION, echo=False, best_of=1, user="user-42")
    assert done.choices[0].text


def test_top_logprobs_without_logprobs_is_400(http: httpx.Client) -> None:
    assert_error(
        http.post("/v1/chat/completions", json={**CHAT, "top_logprobs": 2}), 400, param="top_logprobs"
    )


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"logit_bias": {"not-a-token": 5}}, "logit_bias"),
        ({"logit_bias": {"42": 500}}, "logit_bias"),
        ({"logit_bias": {"999999999": 5}}, "logit_bias"),  # past the vocabulary: the engine says so
        ({"presence_penalty": 3}, "presence_penalty"),
        ({"frequency_penalty": -3}, "frequency_penalty"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
        ({"top_k": -2}, "top_k"),
        ({"min_p": 1.5}, "min_p"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ],
)
def test_out_of_range_sampling_extras_are_400(http: httpx.Client, payload: dict, param: str) -> None:
    error = assert_error(http.post("/v1/chat/completions", json={**CHAT, **payload}), 400)
    assert error["param"].split(".")[0] == param


def test_penalties_logit_bias_and_top_k_change_what_is_generated(
    client: openai.OpenAI, base_model_dir: Path
) -> None:
    # An answer that repeats itself, so that penalties on repeats have something to change.
    count = [{"role": "user", "content": "Count from 1 to 20, separated by commas."}]
    long = {"model": BASE, "messages": count, "max_tokens": 24, "temperature": 0, "logprobs": True}
    greedy = client.chat.completions.create(**long)
    text, first = greedy.choices[0].message.content, greedy.choices[0].logprobs.content[0].token
    (first_id,) = AutoTokenizer.from_pretrained(str(base_model_dir)).encode(first, add_special_tokens=False)
    variants = {
        "banned": {"logit_bias": {str(first_id): -100}},
        "repetition": {"extra_body": {"repetition_penalty": 1.8}},
        "frequency": {"frequency_penalty": 2.0},
        # top_k 1 keeps only the most likely token: sampling hot is greedy again.
        "top_k_1": {"temperature": 1.5, "seed": 3, "extra_body": {"top_k": 1}},
    }
    with ThreadPoolExecutor(len(variants)) as pool:
        replies = pool.map(lambda v: client.chat.completions.create(**{**long, **v}), variants.values())
        answers = dict(zip(variants, replies, strict=True))
    assert answers["banned"].choices[0].logprobs.content[0].token != first
    assert answers["repetition"].choices[0].message.content != text
    assert answers["frequency"].choices[0].message.content != text
    assert answers["top_k_1"].choices[0].message.content == text
