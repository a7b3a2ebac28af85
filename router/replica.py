"""An engine replica for the remote backend: vLLM's own OpenAI server, started with the flags that match
this service's settings (model, LoRA limits, context length), so routers and replicas agree on them."""

from __future__ import annotations

import sys
from pathlib import Path

from router.process import ServiceProcess, free_port
from router.settings import Settings


def replica_command(settings: Settings, *, host: str, port: int) -> list[str]:
    # One slot more than the service's own limits when base requests go through the identity adapter.
    extra = 1 if settings.replica_identity_base else 0
    command = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(settings.resolved_base_model_path),
        "--served-model-name",
        settings.base_model_name,
        "--enable-lora",
        "--max-loras",
        str(settings.max_loras + extra),
        "--max-cpu-loras",
        str(settings.max_cpu_loras + extra),
        "--max-lora-rank",
        str(settings.max_lora_rank),
        "--max-model-len",
        str(settings.max_model_len),
        "--dtype",
        settings.dtype,
        "--seed",
        str(settings.seed),
        # The model's generation_config.json must not add sampling defaults the in-process engine never uses.
        "--generation-config",
        "vllm",
        "--gpu-memory-utilization",
        f"{settings.gpu_memory_utilization:g}",
        "--host",
        host,
        "--port",
        str(port),
    ]
    if settings.engine_api_key:
        command += ["--api-key", settings.engine_api_key]
    return command


def replica_env(settings: Settings) -> dict[str, str]:
    return {
        # /v1/load_lora_adapter and /v1/unload_lora_adapter: how routers place adapters on the replica.
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "true",
        "VLLM_CPU_KVCACHE_SPACE": f"{settings.kv_cache_gib:g}",
        "HF_HUB_OFFLINE": "1",
    }


def replica_process(settings: Settings, log_path: Path) -> ServiceProcess:
    """A replica on loopback and a free port, as a child process (tests, benchmarks); not started yet."""
    port = free_port()
    command = replica_command(settings, host="127.0.0.1", port=port)
    return ServiceProcess(replica_env(settings), log_path, command, port=port, ready_path="/health")
