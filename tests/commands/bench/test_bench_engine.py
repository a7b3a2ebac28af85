"""Seconds-long runs of `lora-router bench engine`, `bench hotswap` and `bench compare` on the real CPU
engine, real PEFT on the real base model and real adapters, so the benchmarks cannot rot (their numbers are
the benchmarks' business, not a test's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from subprocess import PIPE

import pytest

from commands.bench.hotswap import runs
from commands.bench.workload import Stream

CLI = Path(sys.executable).with_name("lora-router")
TINY = ["--adapter-counts", "0,2", "--concurrency", "1,2", "--prompt-tokens", "8", "--output-tokens", "3"]


def bench(data: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "LORA_ROUTER_DATA_DIR": str(data)}
    return subprocess.Popen([str(CLI), "bench", *args], env=env, stdout=PIPE, stderr=PIPE, text=True)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path, adapter_library: Path) -> Path:
    out = tmp_path_factory.mktemp("bench-engine")
    common = ["--base-model-dir", str(base_model_dir), "--adapters-dir", str(adapter_library), *TINY]
    # Side by side: most of each run is its engine's processes importing vLLM; the numbers are not checked.
    running = [
        bench(out / name, name, *common, "--waves", "2", "--out", str(out / f"{name}.json"))
        for name in ("engine", "hotswap")
    ]
    for process in running:
        wait(process)
    return out


def wait(process: subprocess.Popen[str]) -> str:
    stdout, stderr = process.communicate(timeout=900)
    assert process.returncode == 0, (stdout[-2000:], stderr[-3000:])
    return stdout


def finished(data: Path, *args: str) -> str:
    return wait(bench(data, *args))


def test_engine_bench_measures_every_stream(results: Path) -> None:
    result = json.loads((results / "engine.json").read_text())
    rows = {(r["adapters"], r["concurrency"]): r for r in result["rows"]}
    assert set(rows) == {(0, 1), (0, 2), (2, 1), (2, 2)}
    for row in rows.values():
        assert row["requests"] == 8 and row["output_tokens"] == 8 * 3  # ignore_eos: exactly 3 each
        assert row["output_tokens_per_s"] > 0 and 0 < row["ttft"]["p50_ms"] <= row["latency"]["p50_ms"]
    cold = result["cold_adapter"]
    assert cold["first_request_ttft"]["n"] == 3 and cold["warm_ttft"]["n"] == 9
    assert result["model"]["parameters"] > 100e6 and result["environment"]["versions"]
    assert result["engine_setup"]["lora_ops"] == "batched" and result["engine_setup"]["dtype"]


def test_hotswap_bench_batches_only_runs_of_one_adapter(results: Path) -> None:
    result = json.loads((results / "hotswap.json").read_text())
    rows = {(r["adapters"], r["concurrency"]): r for r in result["rows"]}
    assert rows[(0, 2)]["batches"] == 4  # 8 base requests, 2 per batch
    assert rows[(2, 2)]["batches"] == 8  # alternating adapters: every batch is one request
    assert all(r["output_tokens"] == 8 * 3 and r["output_tokens_per_s"] > 0 for r in rows.values())


def test_compare_joins_the_two_and_plots(results: Path) -> None:
    done = finished(
        results,
        "compare",
        str(results / "engine.json"),
        str(results / "hotswap.json"),
        "--out",
        str(results / "compare.json"),
        "--plot",
        str(results / "engine.png"),
    )
    rows = json.loads((results / "compare.json").read_text())["rows"]
    assert len(rows) == 4 and all(r["vllm_over_hotswap"] > 0 for r in rows)
    assert (results / "engine.png").read_bytes()[:4] == b"\x89PNG" and "ratio" in done


def test_runs_follow_arrival_order() -> None:
    stream = Stream(adapters=2, concurrency=4, requests=6, prompt_tokens=1, output_tokens=1)
    assert runs(stream) == [(0, [0]), (1, [1]), (0, [2]), (1, [3]), (0, [4]), (1, [5])]
    base = Stream(adapters=0, concurrency=4, requests=6, prompt_tokens=1, output_tokens=1)
    assert runs(base) == [(None, [0, 1, 2, 3]), (None, [4, 5])]
