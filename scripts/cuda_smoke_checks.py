"""The checks of scripts/cuda_smoke.py, run through the official ``openai`` client against a started service:
model list, greedy chat with the base and each adapter, streaming, a concurrent mixed batch compared with the
same requests sent alone, runtime (un)registration of an adapter, and a small throughput bench.

Apart from the script so that each stays short; it is imported from there (the script's folder is on
``sys.path``), not run on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from commands.process import ServiceProcess

BASE_NAME = "SmolLM2-135M-Instruct"
ADAPTERS = {"alpha": 1, "beta": 2, "gamma": 3}  # name -> seed of the random LoRA weights
RUNTIME_ADAPTER = ("delta", 4)
PARIS = "What is the capital of France?"
PROMPTS = [
    PARIS,
    "Name three colours of the rainbow.",
    "Write one sentence about the sea.",
    "What is 2 + 2?",
]


# ----------------------------------------------------------------------------------------------- results


class Results:
    def __init__(self) -> None:
        self.checks: dict[str, dict[str, Any]] = {}
        self.info: dict[str, Any] = {}

    def check(self, name: str, ok: bool, **detail: Any) -> bool:
        self.checks[name] = {"ok": bool(ok), **detail}
        print(
            f"  [{'PASS' if ok else 'FAIL'}] {name}" + (f"  {_short(detail)}" if detail else ""), flush=True
        )
        return bool(ok)

    def guard(self, name: str, fn: Callable[[], None]) -> None:
        """Run one section; an exception fails it (and is recorded) without hiding the later sections."""
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - a smoke test reports every failure
            self.check(
                name, False, error=f"{type(exc).__name__}: {exc}", trace=traceback.format_exc()[-1500:]
            )

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c["ok"] for c in self.checks.values())

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, **self.info, "checks": self.checks}


def _short(detail: dict[str, Any], limit: int = 160) -> str:
    text = json.dumps({k: v for k, v in detail.items() if k != "trace"}, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----------------------------------------------------------------------------------------------- checks


def _chat(client: Any, model: str, prompt: str, max_tokens: int, **extra: Any) -> Any:
    return client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        temperature=0,
        max_tokens=max_tokens,
        **extra,
    )


def _divergence(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def run_checks(r: Results, service: ServiceProcess, args: argparse.Namespace) -> None:
    import httpx
    import openai

    client = openai.OpenAI(base_url=f"{service.url}/v1", api_key="not-needed", max_retries=0, timeout=300)
    names = list(ADAPTERS)
    models = [BASE_NAME, *names]
    answers: dict[str, str] = {}

    def models_list() -> None:
        ids = [m.id for m in client.models.list().data]
        r.info["models"] = ids
        r.check("models_list", set(models) <= set(ids), ids=ids)

    def greedy() -> None:
        for model in models:
            resp = _chat(client, model, PARIS, args.max_tokens)
            answers[model] = resp.choices[0].message.content
            if resp.model != model:
                r.check(f"chat_model_field_{model}", False, got=resp.model)
        r.info["greedy_answers"] = answers
        base = answers[BASE_NAME]
        r.check("base_answers_paris", "Paris" in base, base=base)
        differ = {n: answers[n] != base for n in names}
        r.check("adapters_differ_from_base", all(differ.values()), differ=differ)
        # Same question twice: greedy output must be stable.
        again = _chat(client, names[0], PARIS, args.max_tokens).choices[0].message.content
        r.check("greedy_repeatable", again == answers[names[0]], first=answers[names[0]], again=again)

    def stream() -> None:
        model = names[0]
        pieces: list[str] = []
        chunks = 0
        for chunk in _chat(client, model, PARIS, args.max_tokens, stream=True):
            chunks += 1
            for choice in chunk.choices:
                if choice.delta.content:
                    pieces.append(choice.delta.content)
        text = "".join(pieces)
        expected = (
            answers.get(model) or _chat(client, model, PARIS, args.max_tokens).choices[0].message.content
        )
        r.check("stream_equals_non_stream", text == expected and len(pieces) > 1, chunks=chunks, text=text)

    def mixed_batch() -> None:
        requests = [
            (models[i % len(models)], PROMPTS[(i // len(models)) % len(PROMPTS)]) for i in range(args.batch)
        ]

        async def together() -> tuple[list[str], int, float]:
            aclient = openai.AsyncOpenAI(
                base_url=f"{service.url}/v1", api_key="not-needed", max_retries=0, timeout=300
            )
            t0 = time.perf_counter()
            resps = await asyncio.gather(*(_achat(aclient, m, p, args.max_tokens) for m, p in requests))
            wall = time.perf_counter() - t0
            await aclient.close()
            return (
                [x.choices[0].message.content for x in resps],
                sum(x.usage.completion_tokens for x in resps),
                wall,
            )

        batched, tokens, wall = asyncio.run(together())
        r.info["mixed_batch"] = {
            "requests": len(requests),
            "models": sorted(set(m for m, _ in requests)),
            "completion_tokens": tokens,
            "wall_s": round(wall, 3),
            "tokens_per_s": round(tokens / wall, 1),
        }
        alone = [_chat(client, m, p, args.max_tokens).choices[0].message.content for m, p in requests]
        mismatches = [
            {"model": m, "prompt": p, "batched": b, "alone": a, "same_first_chars": _divergence(a, b)}
            for (m, p), b, a in zip(requests, batched, alone, strict=False)
            if a != b
        ]
        r.check(
            "mixed_batch_equals_alone",
            not mismatches,
            requests=len(requests),
            equal=len(requests) - len(mismatches),
            tokens_per_s=r.info["mixed_batch"]["tokens_per_s"],
            mismatches=mismatches[:4],
        )
        # Informational: how many distinct answers each prompt got across the models of the batch.
        by_prompt: dict[str, dict[str, str]] = {}
        for (m, p), a in zip(requests, alone, strict=False):
            by_prompt.setdefault(p, {})[m] = a
        r.info["mixed_batch"]["distinct_answers_per_prompt"] = {
            p[:32]: f"{len(set(v.values()))}/{len(v)}" for p, v in by_prompt.items()
        }

    def runtime_adapter() -> None:
        name, _ = RUNTIME_ADAPTER
        with httpx.Client(base_url=service.url, timeout=120) as http:
            resp = http.post("/v1/adapters", json={"name": name, "path": name})
            r.check(
                "register_runtime_adapter",
                resp.status_code == 201,
                status=resp.status_code,
                body=resp.json()
                if resp.headers.get("content-type", "").startswith("application/json")
                else resp.text,
            )
            listed = name in [m.id for m in client.models.list().data]
            text = _chat(client, name, PARIS, args.max_tokens).choices[0].message.content
            r.info["greedy_answers"][name] = text
            r.check("runtime_adapter_used", listed and text != answers[BASE_NAME], listed=listed, text=text)
            resp = http.delete(f"/v1/adapters/{name}")
            r.check("unregister_runtime_adapter", resp.status_code == 200, status=resp.status_code)
            try:
                _chat(client, name, PARIS, 4)
                r.check("unregistered_adapter_404", False, error="request succeeded")
            except openai.NotFoundError as exc:
                body = exc.body if isinstance(exc.body, dict) else {}
                gone = name not in [m.id for m in client.models.list().data]
                r.check(
                    "unregistered_adapter_404",
                    exc.status_code == 404 and gone,
                    status=exc.status_code,
                    message=(body.get("message") or str(body))[:160],
                )

    def bench() -> None:
        """Throughput of N concurrent requests of exactly K tokens: adapters mixed vs. the base alone."""
        if args.bench_requests <= 0:
            return

        async def run(mix: list[str]) -> dict[str, Any]:
            aclient = openai.AsyncOpenAI(
                base_url=f"{service.url}/v1", api_key="not-needed", max_retries=0, timeout=600
            )
            t0 = time.perf_counter()
            resps = await asyncio.gather(
                *(
                    _achat(
                        aclient,
                        mix[i % len(mix)],
                        PROMPTS[i % len(PROMPTS)],
                        args.bench_tokens,
                        extra_body={"ignore_eos": True},
                    )
                    for i in range(args.bench_requests)
                )
            )
            wall = time.perf_counter() - t0
            await aclient.close()
            tokens = sum(x.usage.completion_tokens for x in resps)
            return {
                "models": len(mix),
                "completion_tokens": tokens,
                "wall_s": round(wall, 3),
                "tokens_per_s": round(tokens / wall, 1),
            }

        asyncio.run(run(models))  # warm-up: every adapter resident, kernels tuned for these shapes
        base_only = asyncio.run(run([BASE_NAME]))
        mixed = asyncio.run(run(models))
        r.info["bench"] = {
            "requests": args.bench_requests,
            "max_tokens": args.bench_tokens,
            "base_only": base_only,
            "mixed": mixed,
            "mixed_vs_base": round(mixed["tokens_per_s"] / base_only["tokens_per_s"], 2),
        }
        expected = args.bench_requests * args.bench_tokens
        r.check(
            "bench_token_counts",
            base_only["completion_tokens"] == expected == mixed["completion_tokens"],
            base_only_tps=base_only["tokens_per_s"],
            mixed_tps=mixed["tokens_per_s"],
        )

    r.guard("models_list", models_list)
    r.guard("greedy", greedy)
    r.guard("stream", stream)
    r.guard("mixed_batch", mixed_batch)
    r.guard("runtime_adapter", runtime_adapter)
    r.guard("bench", bench)


async def _achat(client: Any, model: str, prompt: str, max_tokens: int, **extra: Any) -> Any:
    return await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        temperature=0,
        max_tokens=max_tokens,
        **extra,
    )
