"""A tiny `lora-router bench serve` end to end: our service and plain vLLM's OpenAI server with the same
model and adapters, started once, driven in turn by vLLM's own serving benchmark, so the comparison cannot
rot."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from commands.bench.serve import mean_run, ratios, spread
from commands.main import app


def test_bench_serve_smoke(base_model_dir: Path, adapter_library: Path, tmp_path: Path) -> None:
    out = tmp_path / "serve.json"
    cli = Path(sys.executable).with_name("lora-router")
    args = ["bench", "serve", "--base-model-dir", str(base_model_dir), "--adapters-dir", str(adapter_library)]
    args += ["--adapters", "2", "--num-prompts", "4", "--concurrency", "2,1", "--input-len", "32"]
    args += ["--output-len", "4", "--max-model-len", "512", "--repeats", "1", "--max-num-seqs", "8"]
    args += ["--out", str(out)]
    done = subprocess.run([str(cli), *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("ours / plain") == 2
    # Both workloads ran against the same two servers, started once.
    results = {c: json.loads((tmp_path / f"serve-c{c}.json").read_text()) for c in (1, 2)}
    assert not out.exists()
    assert results[1]["startup_s"] == results[2]["startup_s"]
    for concurrency, result in results.items():
        assert result["concurrency"] == concurrency and result["num_prompts"] == 4
        _check_result(result)


def _check_result(result: dict[str, Any]) -> None:
    assert len(result["adapters"]) == 2 and result["api"] == "completions"
    assert result["engine"]["max_loras"] == 2 and result["engine"]["max_lora_rank"] == 8
    assert set(result["runs"]) == set(result["mean"]) == {"ours", "plain_vllm"}
    assert result["repeats"] == 1 and all(start > 0 for start in result["startup_s"].values())
    # The limit given reached both servers (vLLM's refuses to start on a flag it does not take); the one not
    # given is vLLM's server default for a CPU in both; vLLM's CPU platform spawns both engine cores.
    limits = {"max_num_seqs": 8, "max_num_batched_tokens": 2048, "start_method": "spawn"}
    assert result["engine_limits"]["ours"] == result["engine_limits"]["plain_vllm"] == limits
    for runs in result["runs"].values():
        assert len(runs) == 1
        for run in runs:
            assert run["completed"] == 4 and run["failed"] == 0 and run["errors"] == []
            assert run["total_output_tokens"] == 4 * 4
            assert run["request_throughput"] > 0 and run["output_throughput"] > 0
            assert 0 < run["median_ttft_ms"] <= run["p99_ttft_ms"]
            assert 0 < run["median_itl_ms"]
    for name, mean in result["mean"].items():
        assert (
            mean["completed"] == 4
            and mean["output_throughput"] == result["runs"][name][0]["output_throughput"]
        )
    for name, ratio in result["ratio_ours_over_plain"].items():
        assert ratio is not None and math.isfinite(ratio) and ratio > 0, name
        low, high = result["ratio_spread"][name]
        assert 0 < low <= high, name
    assert result["environment"]["versions"]
    assert any("CPU LoRA ops plugin" in note for note in result["notes"])


def test_repeats_are_averaged_and_the_pair_ratios_bound_the_spread() -> None:
    def run(throughput: float, ttft: float) -> dict[str, object]:
        return {
            "completed": 4,
            "failed": 0,
            "output_throughput": throughput,
            "median_ttft_ms": ttft,
            "errors": [],
        }

    ours, plain = [run(90, 20), run(110, 30)], [run(100, 10), run(100, 10)]
    means = mean_run(ours), mean_run(plain)
    assert means[0]["completed"] == 8 and means[0]["output_throughput"] == 100
    assert ratios(*means)["output_throughput"] == 1.0 and ratios(*means)["median_ttft_ms"] == 2.5
    bounds = spread([ratios(o, p) for o, p in zip(ours, plain, strict=True)])
    assert bounds["output_throughput"] == [0.9, 1.1] and bounds["median_ttft_ms"] == [2.0, 3.0]
    assert bounds["p99_itl_ms"] is None  # measured by neither


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["serve", "--concurrency", "0"], "--concurrency"),
        (["serve", "--concurrency", "8,x"], "--concurrency"),
        (["serve", "--concurrency", ","], "--concurrency"),
        (["serve", "--concurrency", "8,64", "--num-prompts", "1,2,3"], "--num-prompts"),
        (["serve", "--num-prompts", "0"], "--num-prompts"),
        (["replicas", "--replicas", "0,-1"], "--replicas"),
        (["engine", "--adapter-counts", "1", "--concurrency", "0"], "--concurrency"),
    ],
)
def test_bad_lists_are_refused_by_option_before_anything_starts(
    base_model_dir: Path, args: list[str], option: str
) -> None:
    done = CliRunner().invoke(app, ["bench", *args, "--base-model-dir", str(base_model_dir)])
    assert done.exit_code == 2, done.output
    assert option in done.output
    assert "comma-separated" in done.output or "per concurrency" in done.output
