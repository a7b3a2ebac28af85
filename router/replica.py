"""An engine replica for the remote backend: vLLM's own OpenAI server, started with the flags that match
this service's settings (model, LoRA limits, context length), so routers and replicas agree on them."""

from __future__ import annotations

import sys

from router.engine.cpu_lora_plugin import OPS_ENV, engine_lora_ops
from router.engine.dtype import engine_dtype
from router.settings import Settings


def check_base_requests(settings: Settings) -> None:
    """Refuse a replica whose LoRA ops would answer base-model requests with an adapter: vLLM's own CPU ops,
    unless the routers send those requests through the identity adapter (a setting both sides read)."""
    ops = engine_lora_ops(settings.cpu_lora_ops)
    if ops.base_needs_identity and not settings.replica_identity_base:
        raise ValueError(
            f"this CPU replica would run vLLM's own LoRA ops ({ops.reason}), which apply the last slot's "
            "adapter to base-model requests: set LORA_ROUTER_REPLICA_IDENTITY_BASE=true for routers and "
            "replicas, or let it run the batched ops (LORA_ROUTER_CPU_LORA_OPS=batched)"
        )


def replica_dtype(settings: Settings) -> str:
    """The dtype a replica on this machine runs: ``settings.dtype`` resolved for its hardware."""
    return engine_dtype(settings.dtype, settings.resolved_base_model_path).dtype


def replica_command(settings: Settings, *, host: str, port: int, dtype: str) -> list[str]:
    """vLLM's server command for a replica; ``dtype`` as ``replica_dtype`` resolves it on the replica."""
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
        dtype,
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
    # Unset, the server picks its own defaults for the replica's hardware, as the in-process engine does.
    if settings.max_num_seqs:
        command += ["--max-num-seqs", str(settings.max_num_seqs)]
    if settings.max_num_batched_tokens:
        command += ["--max-num-batched-tokens", str(settings.max_num_batched_tokens)]
    if settings.engine_api_key:
        command += ["--api-key", settings.engine_api_key]
    return command


def replica_env(settings: Settings) -> dict[str, str]:
    return {
        # /v1/load_lora_adapter and /v1/unload_lora_adapter: how routers place adapters on the replica.
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "true",
        "VLLM_CPU_KVCACHE_SPACE": f"{settings.kv_cache_gib:g}",
        # Read by this project's vLLM plugin in the server's processes (router/engine/cpu_lora_plugin.py).
        OPS_ENV: settings.cpu_lora_ops,
        "HF_HUB_OFFLINE": "1",
    }
