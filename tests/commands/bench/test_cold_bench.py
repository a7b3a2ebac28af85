"""A one-round `lora-router bench cold` against the shared service: register a folder under a new name, chat
to it cold and warm, unregister it; the service's adapters are as before afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from commands.process import ServiceProcess
from tests.service_config import ADMIN_KEY


def _names(http: httpx.Client) -> list[str]:
    return sorted(a["name"] for a in http.get("/v1/adapters").json()["data"])


def test_bench_cold_smoke(service: ServiceProcess, http: httpx.Client, tmp_path: Path) -> None:
    before = _names(http)
    out = tmp_path / "cold.json"
    cli = Path(sys.executable).with_name("lora-router")
    # `delta` is an adapter folder under the shared service's adapter root that no seeded adapter uses.
    args = ["bench", "cold", "--url", service.url, "--path", "delta", "--name", "coldsmoke"]
    args += ["--rounds", "1", "--warm", "1", "--warmup", "0", "--max-tokens", "4", "--out", str(out)]
    env = {**os.environ, "LORA_ROUTER_API_KEY": ADMIN_KEY}
    done = subprocess.run([str(cli), *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "cold / warm TTFT" in done.stdout
    result = json.loads(out.read_text())
    for key in ("register", "register_to_first_token", "cold_ttft", "warm_ttft"):
        assert result[key]["n"] == 1 and result[key]["p50_ms"] > 0, key
    (round_,) = result["per_round_ms"]
    assert round_["name"].startswith("coldsmoke-")
    # Timed from the register call's start: the call itself, then the first chat's TTFT.
    assert round_["register_to_first_token"] >= round_["register"] + round_["cold_ttft"] - 1
    assert result["cold_over_warm_ttft_p50"] > 0
    assert result["registry_unchanged"] is True
    assert _names(http) == before
