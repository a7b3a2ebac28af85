"""Not OpenAI's: the routing explanation every answer carries, ``POST /v1/route`` (the same without
generating) and ``GET /v1/router`` (the live router)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from router.protocol.common import _Request
from router.protocol.messages import ChatMessage


class RoutingInfo(BaseModel):
    """Why this model answered. Not part of OpenAI's schema; clients that don't know it ignore it."""

    requested_model: str
    mode: Literal["auto", "blend", "pinned", "composed", "base"]
    """``blend``: ``auto`` found the top two adapters too close to pick and answered with their
    composition (``composition`` holds the weights)."""
    model: str
    """What answered: an adapter name, a composition (``sql:0.7+extract:0.3``) or the base model's name."""
    adapter: str | None = None
    composition: dict[str, float] | None = None
    """A composition's weight per adapter."""
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
