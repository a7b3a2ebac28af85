"""OpenAI wire format (the subset the service speaks) plus the routing explanation it adds.

Requests ignore fields they do not know, like OpenAI's own server does for forward compatibility; every
field they do know is range-checked here so bad values are refused before anything reaches the engine.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lora_registry import AdapterSpec

MAX_STOPS = 4


class _Request(BaseModel):
    # Strict: the JSON types the schema states, no coercion (a `false` seed or a `0` stream flag is refused).
    model_config = ConfigDict(extra="ignore", strict=True)


class TextPart(_Request):
    type: Literal["text"]
    text: str


class ChatMessage(_Request):
    role: Literal["system", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(_Request):
    include_usage: bool = False


# What the stop validator enforces, in the OpenAPI schema too (so clients and fuzzers see the rule).
_STOP_SCHEMA = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": MAX_STOPS},
        {"type": "null"},
    ]
}


class _SamplingFields(_Request):
    model: str = Field(min_length=1, examples=["auto"])
    n: int = Field(default=1, ge=1)
    stop: str | list[str] | None = Field(default=None, json_schema_extra=_STOP_SCHEMA)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    # vLLM's extension: generate exactly max_tokens (benchmarks, load tests).
    ignore_eos: bool = False

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > MAX_STOPS:
            raise ValueError(f"at most {MAX_STOPS} stop sequences")
        if any(not s for s in stops):
            raise ValueError("stop sequences must be non-empty")
        return value

    @property
    def stop_list(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_SamplingFields):
    prompt: str | list[str] = Field(
        json_schema_extra={
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]
        }
    )

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("prompt list must not be empty")
        return value

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else self.prompt


class RoutingInfo(BaseModel):
    """Why this model answered. Not part of OpenAI's schema; clients that don't know it ignore it."""

    requested_model: str
    mode: Literal["auto", "pinned", "base"]
    model: str
    """What answered: an adapter name or the base model's name."""
    adapter: str | None = None
    label: str | None = None
    confidence: float | None = None
    scores: dict[str, float] | None = None
    fallback_reason: str | None = None
    detail: str | None = None
    latency_ms: float | None = None
    router_version: str | None = None


def _exactly_one_input(schema: dict[str, Any]) -> None:
    # The schema says what the validators say: one of the two, and neither may be an explicit null.
    for name in ("messages", "text"):
        field = schema["properties"][name]
        field.update(next(s for s in field.pop("anyOf") if s.get("type") != "null"))
        field.pop("default", None)
    schema["oneOf"] = [{"required": ["messages"]}, {"required": ["text"]}]


class RouteRequest(_Request):
    """Either a conversation (routed as chat would be) or one text."""

    model_config = ConfigDict(json_schema_extra=_exactly_one_input)

    messages: list[ChatMessage] | None = Field(default=None, min_length=1)
    text: str | None = Field(default=None, min_length=1)

    @field_validator("messages", "text", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must not be null: leave it out instead")
        return value

    @model_validator(mode="after")
    def _one_input(self) -> RouteRequest:
        if (self.messages is None) == (self.text is None):
            raise ValueError("send exactly one of `messages` or `text`")
        return self

    @property
    def conversation(self) -> list[ChatMessage]:
        return self.messages or [ChatMessage(role="user", content=self.text or "")]


class TrainingExample(_Request):
    model_config = ConfigDict(extra="forbid")

    text: str
    label: str


class RouterTrainRequest(_Request):
    examples: list[TrainingExample] = Field(default_factory=list)
    mode: Literal["extend", "replace"] = "extend"
    """extend: the live router's examples plus these; replace: only these. Registered adapters' own
    example utterances are always included."""


class RouterInfo(BaseModel):
    object: Literal["router"] = "router"
    version: str | None
    labels: list[str]
    route_map: dict[str, str]
    """Where each label goes: an adapter name or the base model."""
    fallback: str
    threshold: float
    min_margin: float
    num_examples: int
    activated_at: int | None
    training: bool
    training_progress: float
    last_training_error: str | None = None


class RouterEvalRequest(_Request):
    examples: list[TrainingExample] = Field(default_factory=list)
    """Labelled messages to evaluate on, e.g. held-out messages of a new label."""
    heldout: bool = True
    """Also evaluate on the service's held-out set (LORA_ROUTER_ROUTER_EVAL_FILE)."""


class LabelScore(BaseModel):
    label: str
    precision: float
    recall: float
    f1: float
    support: int


class RouterEvaluation(BaseModel):
    """The live router on labelled messages; confusion rows are true labels, columns predicted ones."""

    object: Literal["router.evaluation"] = "router.evaluation"
    version: str
    count: int
    accuracy: float
    macro_f1: float
    labels: list[str]
    confusion: list[list[int]]
    per_label: list[LabelScore]
    fallback_label: str | None = None


class RouterExamples(BaseModel):
    object: Literal["list"] = "list"
    version: str | None
    data: list[TrainingExample]


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: ResponseMessage
    finish_reason: str | None
    logprobs: None = None


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatChoice]
    usage: Usage
    routing: RoutingInfo


class DeltaMessage(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: DeltaMessage
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None
    routing: RoutingInfo | None = None


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: str | None
    logprobs: None = None


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    routing: RoutingInfo | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "lora-router"
    root: str | None = None
    parent: str | None = None
    description: str | None = None
    system_prompt: str | None = None
    """Not OpenAI's: the system prompt this adapter puts before conversations that have none."""


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class AdapterInfo(AdapterSpec):
    object: Literal["adapter"] = "adapter"
    loaded: bool
    """Whether the engine holds its weights now (loaded on first use, evicted LRU)."""
    requests_served: int = 0
    """Generation requests it answered since the service started."""

    @classmethod
    def from_spec(cls, spec: AdapterSpec, *, loaded: bool, requests_served: int = 0) -> AdapterInfo:
        return cls(**spec.model_dump(), loaded=loaded, requests_served=requests_served)


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


class EngineInfo(BaseModel):
    backend: Literal["vllm", "remote"]
    state: str
    restarts: int
    replicas: list[ReplicaInfo]
    """Remote engine only: the `vllm serve` replicas, in the order of the settings."""


class AdapterFolder(BaseModel):
    path: str
    """Relative to the adapter root: what `POST /v1/adapters` takes as `path`."""
    registered_as: str | None = None


class AdapterFolderList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AdapterFolder]


class AdapterList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AdapterInfo]


class AdapterDeleted(BaseModel):
    object: Literal["adapter.deleted"] = "adapter.deleted"
    id: int
    name: str
    deleted: bool = True


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorInfo
