"""OpenAI wire format (what the service speaks of it) plus the routing explanation it adds.

Requests refuse what they do not know: a field OpenAI's API has but this service does not honour, or a
field nobody defined, gets a `400` naming it rather than being dropped on the floor (REFUSED says why for
OpenAI's own). Every field they do know is range-checked here, before anything reaches the engine.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from lora_registry import AdapterSpec
from lora_registry.response_format import ResponseFormat

MAX_STOPS = 4
# vLLM's own cap (its default max_logprobs); OpenAI's is 20 for chat and 5 for completions.
MAX_LOGPROBS = 20

# OpenAI fields the service knows and does not honour, and why; a request may only leave them out or
# send them null (see README, "OpenAI fields").
REFUSED = {
    "audio": "audio output is not supported: the models here write text",
    "modalities": 'only ["text"] is supported: the models here write text',
    "prediction": "predicted outputs are not supported",
    "reasoning_effort": "the models here do not reason in a separate channel",
    "verbosity": "the models here have no verbosity control",
    "web_search_options": "web search is not supported",
    "moderation": "moderation is not run here",
    "functions": "`functions` is deprecated by OpenAI: send `tools`",
    "function_call": "`function_call` is deprecated by OpenAI: send `tool_choice`",
    "store": "completions are not stored: leave `store` out or send false",
    "service_tier": 'there is one service tier: leave it out or send "auto" or "default"',
    "echo": "echoing the prompt is not supported",
    "suffix": "suffixes (insertion) are not supported",
    "best_of": "best_of is not supported: send `n` and pick",
}


class _Request(BaseModel):
    # Strict: the JSON types the schema states, no coercion (a `false` seed or a `0` stream flag is refused).
    # Forbid: an unknown field is refused by name, not ignored.
    model_config = ConfigDict(extra="forbid", strict=True)


class TextPart(_Request):
    type: Literal["text"]
    text: str


class ToolCallFunction(_Request):
    name: str
    arguments: str
    """The arguments as a JSON text, as OpenAI sends them."""


class ToolCall(_Request):
    id: str
    type: Literal["function"]
    function: ToolCallFunction


class ChatMessage(_Request):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    """Assistant turns: the tools it called."""
    tool_call_id: str | None = None
    """Tool turns: the call this answers."""

    @model_validator(mode="after")
    def _content_where_needed(self) -> ChatMessage:
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError("content is required (an assistant turn may leave it out only with tool_calls)")
        if self.tool_calls is not None and self.role != "assistant":
            raise ValueError("only assistant turns carry tool_calls")
        if (self.tool_call_id is not None) != (self.role == "tool"):
            raise ValueError("tool turns, and only they, carry tool_call_id")
        return self

    @property
    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(_Request):
    include_usage: bool = False
    include_obfuscation: bool | None = None
    """Accepted and ignored: nothing pads the stream's chunks here."""


class StructuredOutputs(_Request):
    """vLLM's own constraint field (its server's ``structured_outputs``): exactly one of these."""

    json_: dict[str, Any] | None = Field(default=None, alias="json")
    regex: str | None = Field(default=None, min_length=1)
    choice: list[Annotated[str, StringConstraints(min_length=1)]] | None = Field(default=None, min_length=1)

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)

    @model_validator(mode="after")
    def _exactly_one(self) -> StructuredOutputs:
        if sum(v is not None for v in (self.json_, self.regex, self.choice)) != 1:
            raise ValueError("send exactly one of json, regex or choice")
        return self


class FunctionDefinition(_Request):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDefinition(_Request):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(_Request):
    name: str


class NamedToolChoice(_Request):
    type: Literal["function"]
    function: NamedFunction


# What the stop validator enforces, in the OpenAPI schema too (so clients and fuzzers see the rule).
_STOP_SCHEMA = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": MAX_STOPS},
        {"type": "null"},
    ]
}
TokenId = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,9}$")]
Bias = Annotated[float, Field(ge=-100, le=100)]


class _SamplingFields(_Request):
    """What chat and text completions share."""

    model: str = Field(min_length=1, examples=["auto"])
    n: int = Field(default=1, ge=1)
    stop: str | list[str] | None = Field(default=None, json_schema_extra=_STOP_SCHEMA)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logit_bias: dict[TokenId, Bias] | None = None
    response_format: ResponseFormat | None = None
    # Accepted and ignored: they describe the caller, not the answer.
    user: str | None = None
    metadata: dict[str, str] | None = None
    # vLLM's extensions.
    top_k: int | None = Field(default=None, ge=-1)
    """0 or -1: no top-k cut."""
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repetition_penalty: float | None = Field(default=None, gt=0.0, le=2.0)
    structured_outputs: StructuredOutputs | None = None
    ignore_eos: bool = False
    """Generate exactly max_tokens (benchmarks, load tests)."""
    # Refused unless left out or null (or the one value that changes nothing): see REFUSED.
    store: Literal[False] | None = None
    service_tier: Literal["auto", "default"] | None = None

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
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_LOGPROBS)
    tools: list[ToolDefinition] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    # Accepted and ignored, like `user`: hints to OpenAI's caches and abuse checks.
    prompt_cache_key: str | None = None
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    prompt_cache_options: dict[str, Any] | None = None
    safety_identifier: str | None = None
    # Refused unless left out or null: see REFUSED.
    modalities: list[Literal["text"]] | None = None
    audio: None = None
    prediction: None = None
    reasoning_effort: None = None
    verbosity: None = None
    web_search_options: None = None
    moderation: None = None
    functions: None = None
    function_call: None = None

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def logprobs_count(self) -> int | None:
        """Most likely tokens to report per position; None: no logprobs."""
        return (self.top_logprobs or 0) if self.logprobs else None


class CompletionRequest(_SamplingFields):
    prompt: str | list[str] = Field(
        json_schema_extra={
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]
        }
    )
    logprobs: int | None = Field(default=None, ge=0, le=MAX_LOGPROBS)
    # Refused unless left out, null or the value that changes nothing: see REFUSED.
    echo: Literal[False] | None = None
    suffix: None = None
    best_of: Literal[1] | None = None

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("prompt list must not be empty")
        return value

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else self.prompt

    @property
    def logprobs_count(self) -> int | None:
        return self.logprobs


class RoutingInfo(BaseModel):
    """Why this model answered. Not part of OpenAI's schema; clients that don't know it ignore it."""

    requested_model: str
    mode: Literal["auto", "pinned", "base"]
    model: str
    """What answered: an adapter name or the base model's name."""
    adapter: str | None = None
    label: str | None = None
    """The most probable label of the top adapter: the winning sub-intent (e.g. ``billing/refund``)."""
    confidence: float | None = None
    """The top adapter's probability, its labels' probabilities summed."""
    scores: dict[str, float] | None = None
    """Probability per label."""
    adapter_scores: dict[str, float] | None = None
    """Summed probability per model the labels map to (adapters, and the base model for e.g. `chat`)."""
    similarity: float | None = None
    """Cosine similarity to the nearest in-scope training example (low: out of scope)."""
    sticky: bool | None = None
    """The conversation's previous adapter answered: this turn did not beat it by the sticky margin."""
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
    """Calibrated probability of the top adapter below which `auto` falls back."""
    min_margin: float
    out_of_scope: bool
    """Whether messages unlike every in-scope example fall back (`fallback_reason: out_of_scope`)."""
    oos_threshold: float | None
    """The live router's similarity threshold for that, set at training (ROUTER_OOS_QUANTILE)."""
    oos_quantile: float
    sticky_margin: float
    sticky_turns: int
    calibration_temperature: float | None
    """Temperature the live router's probabilities are calibrated with (fit by cross-validation)."""
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


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChatLogprobs(BaseModel):
    content: list[TokenLogprob] | None
    refusal: list[TokenLogprob] | None = None


class CompletionLogprobs(BaseModel):
    """The legacy completions shape: parallel lists, one entry per generated token."""

    tokens: list[str] = Field(default_factory=list)
    token_logprobs: list[float] = Field(default_factory=list)
    top_logprobs: list[dict[str, float]] = Field(default_factory=list)
    text_offset: list[int] = Field(default_factory=list)


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[ToolCall] | None = None


class ChatChoice(BaseModel):
    index: int
    message: ResponseMessage
    finish_reason: str | None
    logprobs: ChatLogprobs | None = None


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatChoice]
    usage: Usage
    routing: RoutingInfo


class DeltaFunction(BaseModel):
    name: str | None = None
    arguments: str | None = None


class DeltaToolCall(BaseModel):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: DeltaFunction


class DeltaMessage(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[DeltaToolCall] | None = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: DeltaMessage
    finish_reason: str | None = None
    logprobs: ChatLogprobs | None = None


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
    logprobs: CompletionLogprobs | None = None


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
