"""The engine as the health endpoints report it: its backend and state, its replicas, how it was set up."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class ReplicaInfo(BaseModel):
    url: str
    healthy: bool
    reason: str | None = None
    """Why it is out, when it is."""
    outstanding: int
    """Requests this router has on it now."""
    requests: dict[str, int]
    """Requests this router sent it since start, by model (adapter or base)."""
    adapters_loaded: list[str]
    cold_loads: int
    """Adapters this router loaded onto it (first use there, or again after it came back)."""
    recoveries: int


class EngineSetupInfo(BaseModel):
    """How the in-process engine was set up for this machine (settings `dtype`, `cpu_lora_ops`), and why."""

    dtype: str
    dtype_reason: str
    lora_ops: Literal["batched", "vllm"]
    """`batched`: this project's CPU LoRA ops (rows grouped by adapter); `vllm`: vLLM's own."""
    lora_ops_reason: str
    identity_base: bool
    """Base-model requests run through an all-zero adapter (needed on vLLM's own CPU LoRA ops only)."""
    max_num_seqs: int
    max_num_batched_tokens: int
    """The scheduler's limits per step (settings `max_num_seqs`, `max_num_batched_tokens`; by default what
    vLLM's OpenAI server takes on this hardware)."""
    start_method: Literal["spawn", "fork"]
    """How the engine core process started: `spawn`, as vLLM's OpenAI server starts it, unless environment
    variable `VLLM_WORKER_MULTIPROC_METHOD` says `fork` on a GPU (vLLM's CPU platform always spawns)."""


class EngineInfo(BaseModel):
    backend: Literal["vllm", "remote"]
    state: str
    restarts: int
    replicas: list[ReplicaInfo]
    """Remote engine only: the `vllm serve` replicas, in the order of the settings."""
