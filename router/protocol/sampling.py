"""What chat and text completion requests share: sampling, stop sequences, streaming options, output
constraints, and the OpenAI fields they refuse (REFUSED)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints, field_validator, model_validator
from pydantic.json_schema import JsonDict

from lora_registry.response_format import ResponseFormat
from router.protocol.common import _Request

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


# What the stop validator enforces, in the OpenAPI schema too (so clients and fuzzers see the rule).
_STOP_SCHEMA: JsonDict = {
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
