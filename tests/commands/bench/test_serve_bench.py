"""A tiny `lora-router bench serve` end to end: our service, then plain vLLM's OpenAI server with the same
model and adapters, both driven by vLLM's own serving benchmark, so the comparison cannot rot."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path


def test_bench_serve_smoke(base_model_dir: Path, adapter_library: Path, tmp_path: Path) -> None:
    out = tmp_path / "serve.json"
    cli = Path(sys.executable).with_name("lora-router")
    args = ["bench", "serve", "--base-model-dir", str(base_model_dir), "--adapters-dir", str(adapter_library)]
    args += ["--adapters", "2", "--num-prompts", "4", "--concurrency", "2", "--input-len", "32"]
    args += ["--output-len", "4", "--max-model-len", "512", "--out", str(out)]
    done = subprocess.run([str(cli), *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ours / plain" in done.stdout
    result = json.loads(out.read_text())
    assert len(result["adapters"]) == 2 and result["api"] == "completions"
    assert result["engine"]["max_loras"] == 2 and result["engine"]["max_lora_rank"] == 8
    assert set(result["runs"]) == {"ours", "plain_vllm"}
    for run in result["runs"].values():
        assert run["completed"] == 4 and run["failed"] == 0 and run["errors"] == []
        assert run["total_output_tokens"] == 4 * 4
        assert run["request_throughput"] > 0 and run["output_throughput"] > 0
        assert 0 < run["median_ttft_ms"] <= run["p99_ttft_ms"]
        assert 0 < run["median_itl_ms"]
    for name, ratio in result["ratio_ours_over_plain"].items():
        assert ratio is not None and math.isfinite(ratio) and ratio > 0, name
    assert result["environment"]["versions"]
    assert any("CPU LoRA ops plugin" in note for note in result["notes"])
