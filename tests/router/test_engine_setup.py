"""The services' engines, as `/health` reports them: the dtype this machine's CPU computes fastest, and
the batched LoRA ops running inside vLLM's engine process (so base-model requests need no identity adapter;
test_chat_api's mixed-batch test checks their answers)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from commands.process import ServiceProcess
from router.engine.cpu_lora_plugin import SUPPORTED_VLLM_CPU
from router.engine.dtype import engine_dtype
from router.engine.vllm_engine import START_METHOD_ENV, engine_setup, server_batch_limits
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
        # No limits set: vLLM's OpenAI server defaults for a CPU, as `vllm serve` here would take them.
        assert (each["max_num_seqs"], each["max_num_batched_tokens"]) == (128, 2048)
        # vLLM's CPU platform spawns the engine core, as vLLM's server does everywhere.
        assert each["start_method"] == "spawn"


def test_batch_limits_are_the_settings_else_vllms_server_defaults(base_model_dir: Path) -> None:
    assert server_batch_limits() == (128, 2048)  # vLLM's CPU defaults for its OpenAI server
    setup = engine_setup(Settings(base_model_path=base_model_dir, max_num_seqs=7, max_num_batched_tokens=512))
    assert (setup.max_num_seqs, setup.max_num_batched_tokens) == (7, 512)


@pytest.mark.parametrize("variable", [None, "fork", "spawn"])
def test_the_start_method_shown_is_the_one_vllm_starts_the_engine_core_by(
    base_model_dir: Path, monkeypatch: pytest.MonkeyPatch, variable: str | None
) -> None:
    """vLLM settles it while it builds the engine's configuration (its CPU platform sets the variable), then
    starts the engine core process with the multiprocessing context this asks for."""
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.usage.usage_lib import UsageContext
    from vllm.utils.system_utils import get_mp_context

    monkeypatch.setattr(os, "environ", os.environ.copy())  # vLLM writes to it
    os.environ.pop(START_METHOD_ENV, None)
    if variable:
        os.environ[START_METHOD_ENV] = variable
    shown = engine_setup(Settings(base_model_path=base_model_dir)).start_method
    args = AsyncEngineArgs(model=str(base_model_dir), enable_lora=True, max_model_len=2048)
    args.create_engine_config(UsageContext.OPENAI_API_SERVER)
    assert get_mp_context().get_start_method() == shown


def test_the_engine_schedules_with_the_limits_health_shows(service: ServiceProcess) -> None:
    """vLLM's own scheduler log line, in the engine the shared service runs."""
    assert "Chunked prefill is enabled with max_num_batched_tokens=2048." in service.log_path.read_text()


def test_the_engine_process_itself_runs_the_batched_ops(service: ServiceProcess) -> None:
    """vLLM loads the plugin in its engine core (and its worker): their log lines say so."""
    lines = service.log_path.read_text().splitlines()
    installed = [line for line in lines if "lora-router: batched CPU LoRA ops" in line]
    assert any("EngineCore" in line or "Worker" in line for line in installed), installed
    assert not any("vLLM's own LoRA ops" in line for line in lines)
