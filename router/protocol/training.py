"""Not OpenAI's: the router's admin endpoints ``/v1/router/examples``, ``/v1/router/train`` and
``/v1/router/evaluate``: its labelled examples, retraining it and evaluating it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from router.protocol.common import _Request


class TrainingExample(_Request):
    model_config = ConfigDict(extra="forbid")

    text: str
    label: str


class RouterTrainRequest(_Request):
    examples: list[TrainingExample] = Field(default_factory=list)
    mode: Literal["extend", "replace"] = "extend"
    """extend: the live router's examples plus these; replace: only these. Registered adapters' own
    example utterances are always included."""


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


class PolicyScore(BaseModel):
    """What ``auto`` answers the messages with under the live policy (every fallback rule, the registered
    adapters): a message is right when it reaches the model its label maps to."""

    threshold: float
    fallback_rate: float
    accuracy_when_routed: float | None
    accuracy_with_fallback: float
    fallback_reasons: dict[str, int]


class RouterEvaluation(BaseModel):
    """The live router on labelled messages: the classifier's own scores (confusion rows are true labels,
    columns predicted ones) and, in ``policy``, what the live policy answers."""

    object: Literal["router.evaluation"] = "router.evaluation"
    version: str
    count: int
    accuracy: float
    macro_f1: float
    labels: list[str]
    confusion: list[list[int]]
    per_label: list[LabelScore]
    fallback_label: str | None = None
    policy: PolicyScore


class RouterExamples(BaseModel):
    object: Literal["list"] = "list"
    version: str | None
    data: list[TrainingExample]
