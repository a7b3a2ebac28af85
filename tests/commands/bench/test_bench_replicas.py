"""A tiny `lora-router bench replicas` end to end: the embedded engine and one `vllm serve` replica behind a
router, both started once and driven in turn by vLLM's serving benchmark, so the scale-out comparison
cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_bench_replicas_smoke(base_model_dir: Path, adapter_library: Path, tmp_path: Path) -> None:
    out = tmp_path / "replicas.json"
    cli = Path(sys.executable).with_name("lora-router")
    args = ["bench", "replicas", "--replicas", "0,1", "--base-model-dir", str(base_model_dir)]
    args += ["--adapters-dir", str(adapter_library), "--adapters", "2", "--num-prompts", "4"]
    args += ["--concurrency", "2", "--input-len", "16", "--output-len", "4", "--repeats", "2"]
    args += ["--out", str(out)]
    done = subprocess.run([str(cli), *args], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert list(result["runs"]) == ["in-process", "1-replica"]
    for runs in result["runs"].values():
        assert len(runs) == 2
        for run in runs:
            assert run["completed"] == 4 and run["failed"] == 0 and run["errors"] == []
            assert run["total_output_tokens"] == 4 * 4 and run["output_throughput"] > 0
    # Every request of the remote configuration went through its one replica: warm-up (one per adapter),
    # the unmeasured run (the whole workload) and both measured runs.
    assert result["replicas"]["1-replica"]["requests_per_replica"] == [2 + 4 + 4 + 4]
    assert result["replicas"]["in-process"]["requests_per_replica"] == []
    ratio = result["ratio_vs_first"]["1-replica"]["output_throughput"]
    low, high = result["ratio_spread"]["1-replica"]["output_throughput"]
    assert ratio > 0 and 0 < low <= high
    assert "1-replica" in done.stdout and "x the first" in done.stdout
