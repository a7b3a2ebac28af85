"""The engine interface: what serving needs from whatever runs the model.

Serving renders prompts to token ids and asks for a stream of steps; an engine backend (in-process vLLM,
or remote replicas later) turns that into tokens. Adapters are named by a stable integer id, because vLLM
caches LoRA weights by id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from lora_registry import AdapterSpec


@dataclass(frozen=True)
class AdapterRef:
    name: str
    id: int
    path: Path

    @classmethod
    def from_spec(cls, spec: AdapterSpec) -> AdapterRef:
        return cls(name=spec.name, id=spec.id, path=spec.path)


@dataclass(frozen=True)
class SamplingOptions:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    ignore_eos: bool = False


@dataclass
class CompletionDelta:
    """New text of one of the ``n`` completions since the previous step."""

    index: int
    text: str
    num_tokens: int
    finish_reason: str | None = None


@dataclass
class GenerationStep:
    deltas: list[CompletionDelta] = field(default_factory=list)
    finished: bool = False


@dataclass(frozen=True)
class ReplicaStatus:
    """One engine replica as the service sees it (remote engines)."""

    url: str
    healthy: bool
    reason: str | None
    outstanding: int
    requests: dict[str, int]
    adapters_loaded: list[str]
    cold_loads: int
    recoveries: int


@dataclass(frozen=True)
class EngineSetup:
    """How the in-process engine was set up for this machine, and why."""

    dtype: str
    dtype_reason: str
    lora_ops: str
    """``batched`` (this project's CPU LoRA ops) or ``vllm`` (vLLM's own)."""
    lora_ops_reason: str
    identity_base: bool
    """Base-model requests run through the all-zero identity adapter (vLLM's own CPU LoRA ops only)."""


class EngineError(RuntimeError):
    """The engine could not serve a request (dead, overloaded, or it rejected the input)."""


class Engine(Protocol):
    max_model_len: int

    def generate(
        self,
        request_id: str,
        prompt_token_ids: list[int],
        sampling: SamplingOptions,
        adapter: AdapterRef | None,
    ) -> AsyncIterator[GenerationStep]:
        """Stream the request's steps. Closing the iterator early aborts the request in the engine."""
        ...

    async def add_adapter(self, adapter: AdapterRef) -> None:
        """Load an adapter ahead of its first request (otherwise it is loaded on first use)."""
        ...

    async def remove_adapter(self, adapter: AdapterRef) -> None: ...

    async def loaded_adapter_ids(self) -> set[int]: ...

    async def check_health(self) -> None:
        """Raise EngineError when the engine cannot serve."""
        ...

    def cpu_seconds(self) -> float | None:
        """CPU time the engine's own processes have used so far, or None where that cannot be seen. A long
        step still burns CPU; a stopped or deadlocked engine does not."""
        ...

    def unavailable(self) -> str | None:
        """Why a request started now would fail at once (dead, restarting), or None; cheap, no I/O."""
        ...

    def fail_requests(self, reason: str) -> None:
        """End every request in flight with EngineError(reason): the engine is about to be replaced."""
        ...

    def shutdown(self) -> None: ...


class ManagedEngine(Engine, Protocol):
    """An engine that keeps itself serving (restarts, replicas) and reports how it is doing."""

    @property
    def state(self) -> str:
        """ready, or why not (starting, restarting, degraded, down, stopped)."""
        ...

    @property
    def restarts(self) -> int:
        """Times the engine (or one of its replicas) came back after a failure."""
        ...

    def replicas(self) -> list[ReplicaStatus]:
        """The replicas it spreads requests over; empty for the in-process engine."""
        ...

    @property
    def setup(self) -> EngineSetup | None:
        """The in-process engine's dtype and LoRA ops; None for replicas (each logs its own)."""
        ...

    async def start(self) -> None: ...
