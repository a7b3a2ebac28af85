"""A seconds-long `lora-router bench load` past the shared service's admission limit, so the load test
cannot rot; it also checks what overload must never do: answer 5xx or leak admission places."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from commands.process import ServiceProcess
from tests.router.service_checks import wait_for
from tests.service_config import MAX_ADMITTED, USER_KEY


def test_bench_load_smoke(service: ServiceProcess, http: httpx.Client, tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    cli = Path(sys.executable).with_name("lora-router")
    clients = MAX_ADMITTED + 8
    args = ["bench", "load", "--url", service.url, "--clients", str(clients), "--duration", "8"]
    args += ["--adapters", "2", "--max-tokens", "8", "--pid", str(service.pid), "--out", str(out)]
    env = {**os.environ, "LORA_ROUTER_API_KEY": USER_KEY}
    done = subprocess.run([str(cli), *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused with 429" in done.stdout
    result = json.loads(out.read_text())
    assert result["clients"] == clients and result["admission_limit"] == MAX_ADMITTED
    assert len(result["models"]) == 3  # two adapters and the base model
    assert result["refused_429"] > 0
    assert result["service_refused_overloaded"] == result["refused_429"]
    assert result["server_errors_5xx"] == 0 and result["errors"] == {}
    assert set(result["accepted_by_model"]) == set(result["models"])
    assert 0 < result["latency"]["p50_ms"] <= result["latency"]["p99_ms"]
    assert 0 < result["rss_mib"]["start"] <= result["rss_mib"]["peak"]
    assert wait_for(lambda: http.get("/health").json()["admitted"] == 0, within_s=10)
