"""The services' engines, as `/health` reports them: the dtype this machine's CPU computes fastest, and
the batched LoRA ops running inside vLLM's engine process (so base-model requests need no identity adapter;
test_chat_api's mixed-batch test checks their answers)."""

from __future__ import annotations

from pathlib import Path

import httpx

from commands.process import ServiceProcess
from router.engine.cpu_lora_plugin import SUPPORTED_VLLM_CPU
from router.engine.dtype import engine_dtype
from router.settings import Settings


def test_health_shows_the_dtype_and_lora_ops_and_why(
    http: httpx.Client, open_service: ServiceProcess, base_model_dir: Path
) -> None:
    # The shared service forces float32 (tests/conftest.py says why); the open one is set up as `make serve`
    # sets one up, so its engine runs what `auto` chooses on this machine (or what LORA_ROUTER_DTYPE in this
    # environment, which it inherits, forces).
    forced = http.get("/health").json()["engine_setup"]
    assert (forced["dtype"], forced["dtype_reason"]) == ("float32", "set by LORA_ROUTER_DTYPE")
    setup = httpx.get(f"{open_service.url}/health", timeout=30).json()["engine_setup"]
    expected = engine_dtype(Settings().dtype, base_model_dir)
    assert (setup["dtype"], setup["dtype_reason"]) == (expected.dtype, expected.reason)
    for each in (forced, setup):
        assert each["lora_ops"] == "batched" and SUPPORTED_VLLM_CPU in each["lora_ops_reason"]
        assert each["identity_base"] is False


def test_the_engine_process_itself_runs_the_batched_ops(service: ServiceProcess) -> None:
    """vLLM loads the plugin in its engine core (and its worker): their log lines say so."""
    lines = service.log_path.read_text().splitlines()
    installed = [line for line in lines if "lora-router: batched CPU LoRA ops" in line]
    assert any("EngineCore" in line or "Worker" in line for line in installed), installed
    assert not any("vLLM's own LoRA ops" in line for line in lines)
