"""The shipped experts through the real service and vLLM CPU engine: they beat the base model at their own
tasks, mixed concurrent traffic answers like each request alone, and `eval-experts` runs end to end."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest

from commands.process import ServiceProcess
from experts.evaluation import MAX_TOKENS
from experts.tasks import TASKS, TaskExample
from router.settings import DEFAULT_BASE_MODEL
from tests.service_config import USER_KEY

EXPERTS = ["sql", "math", "extract"]
N = 4


def answer(client: openai.OpenAI, model: str, example: TaskExample) -> str:
    reply = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": example.prompt}],
        temperature=0,
        max_tokens=MAX_TOKENS[example.task],
    )
    return reply.choices[0].message.content or ""


@pytest.mark.parametrize("task", EXPERTS)
def test_each_expert_beats_the_base_model_on_its_task(client: openai.OpenAI, task: str) -> None:
    examples = TASKS[task].examples("eval", N)
    models = (task, DEFAULT_BASE_MODEL)
    asks = [(model, e) for model in models for e in examples]
    # All at once: the engine batches them, and greedy answers are the same alone or batched (checked below).
    with ThreadPoolExecutor(len(asks)) as pool:
        answers = list(pool.map(lambda ask: answer(client, *ask), asks))
    score = {model: 0.0 for model in models}
    for (model, example), text in zip(asks, answers, strict=True):
        score[model] += TASKS[task].score(example, text) / N
    assert score[task] >= score[DEFAULT_BASE_MODEL] + 0.3, score


def test_mixed_concurrent_experts_and_base_answer_like_alone(
    client: openai.OpenAI, async_client: openai.AsyncOpenAI
) -> None:
    jobs = [
        (model, TASKS[task].examples("eval", 2)[i])
        for i in range(2)
        for model, task in (
            ("sql", "sql"),
            ("math", "math"),
            ("extract", "extract"),
            (DEFAULT_BASE_MODEL, "chat"),
        )
    ]
    alone = [answer(client, model, example) for model, example in jobs]

    async def together() -> list[str]:
        async def one(model: str, example: TaskExample) -> str:
            reply = await async_client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": example.prompt}],
                temperature=0,
                max_tokens=MAX_TOKENS[example.task],
            )
            return reply.choices[0].message.content or ""

        return await asyncio.gather(*(one(m, e) for m, e in jobs))

    assert asyncio.run(together()) == alone


def test_eval_experts_command_scores_every_model_and_policy(service: ServiceProcess, tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("lora-router")
    args = ["eval-experts", "--url", service.url, "--n", "1", "--pairs", "--out", str(tmp_path)]
    done = subprocess.run(
        [str(cli), *args, "--api-key", USER_KEY], env=dict(os.environ), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "auto / oracle on the mixed set" in done.stdout
    assert "| sql:0.5+math:0.5 | math |" in done.stdout  # the compositions' table
    report = json.loads((tmp_path / "experts.json").read_text())
    assert set(report["policies"]) == {"base", "expert", "oracle", "auto"}
    pairs = ["sql:0.5+math:0.5", "sql:0.5+extract:0.5", "math:0.5+extract:0.5"]
    assert report["compositions"] == pairs
    assert set(report["grid"]) == {DEFAULT_BASE_MODEL, "sql", "math", "extract", "auto", *pairs}
    # base and auto on all 4 tasks, each expert on its own, each pair on both of its parts'.
    assert len(report["answers"]) == 2 * 4 + 3 + 3 * 2
    assert report["grid"]["sql"].keys() == {"sql"}
    assert report["grid"]["sql:0.5+extract:0.5"].keys() == {"sql", "extract"}
    assert (tmp_path / "experts.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "compositions.png").read_bytes().startswith(b"\x89PNG")

    # The same service asked again as the `sql` model answers identically (greedy): `eval-merged` compares a
    # merged model against these answers the same way.
    merged = ["eval-merged", str(tmp_path / "experts.json"), "--adapter", "sql", "--url", service.url]
    again = subprocess.run(
        [str(cli), *merged, "--model", "sql", "--out", str(tmp_path / "agree.json"), "--api-key", USER_KEY],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert "1/1 identical (100.0%)" in again.stdout
    agreement = json.loads((tmp_path / "agree.json").read_text())
    assert agreement["rate"] == 1.0 and agreement["score"] == agreement["reference_score"]
    # A composition is compared on its parts' tasks.
    pair = ["eval-merged", str(tmp_path / "experts.json"), "--adapter", pairs[0], "--model", pairs[0]]
    again = subprocess.run(
        [str(cli), *pair, "--url", service.url, "--api-key", USER_KEY], capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert "2/2 identical (100.0%)" in again.stdout and "sql+math eval messages" in again.stdout
    no_expert = subprocess.run(
        [str(cli), *merged[:2], "--adapter", "chat", "--url", service.url, "--api-key", USER_KEY],
        capture_output=True,
        text=True,
    )
    assert no_expert.returncode == 2 and "no answers of 'chat'" in no_expert.stderr


def test_eval_blend_routes_its_pool_and_finds_nothing_to_judge_with_blending_off(
    service: ServiceProcess, tmp_path: Path
) -> None:
    # The shared service runs without ROUTER_BLEND: `auto` never blends, so every routed message is left out
    # and the command says why rather than reporting empty scores.
    cli = Path(sys.executable).with_name("lora-router")
    out = tmp_path / "blend.json"
    args = ["eval-blend", "--url", service.url, "--pool", "3", "--out", str(out), "--api-key", USER_KEY]
    done = subprocess.run([str(cli), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"0 of {3 * len(EXPERTS)} routed eval messages were blended" in done.stdout
    assert "LORA_ROUTER_ROUTER_BLEND on?" in done.stdout
    report = json.loads(out.read_text())
    assert report["routed"] == 3 * len(EXPERTS) and report["pool_per_task"] == 3
    assert report["blended"] == [] and report["scores"] == {} and report["answers"] == {}
