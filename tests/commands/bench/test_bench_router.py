"""A seconds-long run of `lora-router bench router` so the benchmark cannot rot (numbers are not checked
against targets here: that is the benchmark's job, not a test's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from commands.process import ServiceProcess
from tests.service_config import USER_KEY


def test_bench_router_smoke(service: ServiceProcess, service_data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "router.json"
    cli = Path(sys.executable).with_name("lora-router")
    env = {**os.environ, "LORA_ROUTER_DATA_DIR": str(service_data_dir), "LORA_ROUTER_API_KEY": USER_KEY}
    args = ["bench", "router", "--n", "24", "--batch-size", "8", "--url", service.url, "--ttft-n", "3"]
    done = subprocess.run([str(cli), *args, "--out", str(out)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "routing share of TTFT" in done.stdout
    result = json.loads(out.read_text())
    assert set(result["classifier"]) == {"onnx", "torch"} and "torch / onnx" in done.stdout
    for timing in result["classifier"].values():
        single, batched = timing["single"], timing["batched"]
        assert single["n"] == 24 and 0 < single["p50_ms"] <= single["p99_ms"]
        assert batched["n"] == 3 and batched["batch_size"] == 8
    assert result["torch_over_onnx_p50"] > 0
    service_result = result["service"]
    assert service_result["ttft"]["n"] == 3 and service_result["routing"]["n"] == 3
    assert 0 < service_result["routing_share_of_ttft_p50"] < 1
