"""The engine interface: what serving needs from whatever runs the model.

Serving renders prompts to token ids and asks for a stream of steps; an engine backend (in-process vLLM,
or remote replicas later) turns that into tokens. Adapters are named by a stable integer id, because vLLM
caches LoRA weights by id.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

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
class StructuredOutput:
    """A constraint on the output, in the terms of vLLM's structured outputs (exactly one kind)."""

    kind: Literal["json", "json_object", "regex", "choice"]
    json_schema: dict[str, Any] | None = None
    regex: str | None = None
    choice: tuple[str, ...] = ()
    source: str = "response_format"
    """The request field it came from, named when the engine refuses it."""

    def as_vllm_fields(self) -> dict[str, Any]:
        """The fields of vLLM's ``StructuredOutputsParams`` (and of its server's ``structured_outputs``)."""
        if self.kind == "json":
            return {"json": self.json_schema}
        if self.kind == "json_object":
            return {"json_object": True}
        if self.kind == "regex":
            return {"regex": self.regex}
        return {"choice": list(self.choice)}


@dataclass(frozen=True)
class SamplingOptions:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    # Token id -> bias added to its logit.
    logit_bias: tuple[tuple[int, float], ...] = ()
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    ignore_eos: bool = False
    # Some tool-call parsers read special tokens (a model may mark `<tool_call>` so).
    skip_special_tokens: bool = True
    structured: StructuredOutput | None = None
    # Most likely tokens to report beside each sampled token's logprob; None: no logprobs at all.
    logprobs: int | None = None


class RequestRejected(ValueError):
    """The engine refused the request's content (a schema it cannot compile, a token id it does not know):
    the client's mistake, not the engine's failure. ``param`` is the engine's name for the field, if any."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True)
class TokenLogprob:
    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()
    """The most likely tokens at this position (token id, logprob), most likely first."""


@dataclass(slots=True)  # one per token and request in flight: slots make them cheaper to build and read
class CompletionDelta:
    """New text of one of the ``n`` completions since the previous step."""

    index: int
    text: str
    num_tokens: int
    finish_reason: str | None = None
    # One per new token when logprobs were asked for.
    logprobs: list[TokenLogprob] | None = None


@dataclass(slots=True)
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
    max_num_seqs: int
    max_num_batched_tokens: int
    """The scheduler's limits per step: the settings, else vLLM's OpenAI server defaults for the hardware."""
    start_method: str
    """How the engine core process starts: ``spawn`` (a fresh interpreter, as vLLM's OpenAI server starts
    it), unless ``VLLM_WORKER_MULTIPROC_METHOD`` says ``fork`` on a GPU (vLLM's CPU platform always
    spawns)."""


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
    ) -> AsyncGenerator[GenerationStep, None]:
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
