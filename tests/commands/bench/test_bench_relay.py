"""A seconds-long run of `lora-router bench relay` so the benchmark cannot rot: every token the stand-in
replica streams comes through the router's real replica client, and through a whole router process (no
engine), counted, with their CPU cost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_bench_relay_smoke(base_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "relay.json"
    cli = Path(sys.executable).with_name("lora-router")
    args = ["bench", "relay", "--concurrency", "8", "--tokens", "16", "--rounds", "2"]
    args += ["--base-model-dir", str(base_model_dir), "--out", str(out)]
    done = subprocess.run([str(cli), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "whole router, median" in done.stdout
    result = json.loads(out.read_text())
    assert result["concurrency"] == 8 and result["tokens_per_stream"] == 16
    for part in ("client", "router"):
        assert len(result[part]["runs"]) == 2
        # Each round checks it received every token; a round too short for one CPU tick reads 0 µs.
        assert all(run["tokens_per_s"] > 0 and run["cpu_us_per_token"] >= 0 for run in result[part]["runs"])
