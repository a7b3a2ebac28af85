"""Sampling values a request leaves out: the adapter's, then the base model's generation config (which
`prepare` writes), then OpenAI's; and the base model answering right with none set, as on `make serve`."""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai

from commands.prepare import GENERATION_CONFIG, MARKER, SAMPLING_DEFAULTS, prepare_base_model
from commands.process import ServiceProcess
from lora_registry import GenerationDefaults
from router.protocol import ChatCompletionRequest
from router.serving.sampling import ModelDefaults, resolve_sampling
from router.settings import DEFAULT_BASE_MODEL


def resolve(model: ModelDefaults, adapter: GenerationDefaults | None = None, **fields: object):
    request = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    )
    return resolve_sampling(
        request,
        requested_max_tokens=request.requested_max_tokens,
        defaults=adapter,
        model_defaults=model,
        structured=None,
        logprobs=None,
        default_max_tokens=256,
        max_n=8,
        prompt_tokens=10,
        max_model_len=2048,
        prompt_param="messages",
    )


def test_the_request_wins_over_the_adapter_which_wins_over_the_model() -> None:
    model = ModelDefaults(temperature=0.2, top_p=0.9, top_k=40, repetition_penalty=1.1, max_new_tokens=100)
    adapter = GenerationDefaults(temperature=0.0, max_tokens=12)
    neutral = resolve(ModelDefaults())
    assert (neutral.temperature, neutral.top_p, neutral.top_k, neutral.repetition_penalty) == (
        1.0,
        1.0,
        0,
        1.0,
    )
    assert neutral.max_tokens == 256
    base = resolve(model)
    assert (base.temperature, base.top_p, base.top_k, base.repetition_penalty, base.max_tokens) == (
        0.2,
        0.9,
        40,
        1.1,
        100,
    )
    pinned = resolve(model, adapter)
    assert (pinned.temperature, pinned.top_p, pinned.max_tokens) == (0.0, 0.9, 12)
    asked = resolve(model, adapter, temperature=0.7, top_p=0.5, max_tokens=30, top_k=5)
    assert (asked.temperature, asked.top_p, asked.max_tokens, asked.top_k) == (0.7, 0.5, 30, 5)


def test_model_defaults_are_read_as_vllm_reads_them(tmp_path: Path) -> None:
    assert ModelDefaults.from_folder(tmp_path) == ModelDefaults()  # no generation config: none
    # transformers' own defaults (top_k 50, temperature 1.0) are not recommendations, so vLLM skips them.
    config = {"temperature": 0.6, "top_p": 0.95, "top_k": 50, "do_sample": True, "eos_token_id": 2}
    (tmp_path / GENERATION_CONFIG).write_text(json.dumps(config))
    assert ModelDefaults.from_folder(tmp_path) == ModelDefaults(temperature=0.6, top_p=0.95)


def test_prepare_writes_the_recommended_sampling_and_updates_older_folders(
    base_model_dir: Path, tmp_path: Path
) -> None:
    config = json.loads((base_model_dir / GENERATION_CONFIG).read_text())
    assert {k: config[k] for k in SAMPLING_DEFAULTS} == {"do_sample": True, "temperature": 0.1, "top_p": 0.9}
    assert ModelDefaults.from_folder(base_model_dir) == ModelDefaults(temperature=0.1, top_p=0.9)
    # A folder prepared before the defaults existed: same weights, no sampling values. Linked, not copied.
    older = tmp_path / DEFAULT_BASE_MODEL
    older.mkdir()
    for file in base_model_dir.iterdir():
        os.link(file, older / file.name) if file.suffix == ".safetensors" else shutil.copy(file, older)
    stale = {k: v for k, v in config.items() if k not in SAMPLING_DEFAULTS}
    (older / GENERATION_CONFIG).write_text(json.dumps(stale))
    marker = (older / MARKER).read_text()
    assert prepare_base_model(older) is False  # not rebuilt...
    assert json.loads((older / GENERATION_CONFIG).read_text()) == stale | SAMPLING_DEFAULTS  # ...but updated
    assert (older / MARKER).read_text() == marker


def test_a_request_without_sampling_fields_samples_as_the_model_recommends(
    open_service: ServiceProcess,
) -> None:
    # As a new user asks on `make serve`: no temperature, no top_p. A seed makes sampling repeatable, so the
    # defaults in force show: the answers of the model's recommended values, not of OpenAI's neutral ones.
    client = openai.OpenAI(base_url=f"{open_service.url}/v1", api_key="unused", max_retries=0, timeout=300)
    question = [{"role": "user", "content": "What is the capital of France?"}]
    seeds = [1, 2, 3]
    asks = [{}, {"temperature": 0.1, "top_p": 0.9}, {"temperature": 1.0, "top_p": 1.0}]

    def ask(fields: dict, seed: int) -> str:
        reply = client.chat.completions.create(
            model=DEFAULT_BASE_MODEL, messages=question, seed=seed, max_tokens=24, **fields
        )
        return reply.choices[0].message.content

    with ThreadPoolExecutor(len(asks) * len(seeds)) as pool:
        futures = [[pool.submit(ask, fields, seed) for seed in seeds] for fields in asks]
        plain, recommended, neutral = ([f.result() for f in row] for row in futures)
    assert plain == recommended
    assert plain != neutral
    assert any("Paris" in answer for answer in plain)
