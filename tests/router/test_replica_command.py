"""`lora-router replica` on this CPU: it hands vLLM's processes the LoRA ops setting, and refuses to start a
replica whose LoRA ops would answer base-model requests with an adapter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from router.engine.cpu_lora_plugin import OPS_ENV
from router.replica import check_base_requests, replica_command, replica_env
from router.settings import Settings

CLI = Path(sys.executable).with_name("lora-router")


def test_batched_ops_need_no_identity_adapter(base_model_dir: Path) -> None:
    settings = Settings(base_model_path=base_model_dir)
    assert settings.cpu_lora_ops == "batched" and not settings.replica_identity_base
    check_base_requests(settings)
    assert replica_env(settings)[OPS_ENV] == "batched"


def test_vllms_own_ops_need_the_identity_adapter(base_model_dir: Path) -> None:
    with pytest.raises(ValueError, match="LORA_ROUTER_REPLICA_IDENTITY_BASE=true"):
        check_base_requests(Settings(base_model_path=base_model_dir, cpu_lora_ops="vllm"))
    settings = Settings(base_model_path=base_model_dir, cpu_lora_ops="vllm", replica_identity_base=True)
    check_base_requests(settings)
    assert replica_env(settings)[OPS_ENV] == "vllm"


def test_the_command_refuses_before_starting_vllm(tmp_path: Path, base_model_dir: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LORA_ROUTER_")},
        "LORA_ROUTER_DATA_DIR": str(tmp_path),
        "LORA_ROUTER_BASE_MODEL_PATH": str(base_model_dir),
        OPS_ENV: "vllm",
    }
    done = subprocess.run(
        [str(CLI), "replica", "--port", "1"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1
    assert "replica not started" in done.stderr and "LORA_ROUTER_REPLICA_IDENTITY_BASE" in done.stderr


def test_batch_limits_reach_the_replica_only_when_set(base_model_dir: Path) -> None:
    def flags(settings: Settings) -> list[str]:
        command = replica_command(settings, host="127.0.0.1", port=1, dtype="float32")
        return [arg for arg in command if arg.startswith("--max-num")]

    # Unset, vLLM's server picks its defaults for the replica's own hardware.
    assert flags(Settings(base_model_path=base_model_dir)) == []
    settings = Settings(base_model_path=base_model_dir, max_num_seqs=64, max_num_batched_tokens=4096)
    command = replica_command(settings, host="127.0.0.1", port=1, dtype="float32")
    assert flags(settings) == ["--max-num-seqs", "--max-num-batched-tokens"]
    assert command[command.index("--max-num-seqs") + 1] == "64"
    assert command[command.index("--max-num-batched-tokens") + 1] == "4096"
