"""What an operator registers, and what the registry hands out for serving."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lora_registry.errors import InvalidAdapterNameError
from lora_registry.response_format import ResponseFormat

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# The router labels an adapter's sub-intents "<adapter>/<sub-intent>" (classifier.data.LABEL_PATTERN).
SUB_INTENT_PATTERN = NAME_PATTERN.pattern
MAX_STOP_SEQUENCES = 8
MAX_EXAMPLES = 256
MAX_EXAMPLE_CHARS = 2000


class GenerationDefaults(BaseModel):
    """Per-adapter sampling and prompt defaults; a value set in the request wins over these."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    system_prompt: str | None = None
    stop: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, max_length=MAX_STOP_SEQUENCES
    )
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    response_format: ResponseFormat | None = None
    """The shape of this adapter's answers (e.g. a JSON schema), unless the request asks for another."""


Utterance = Annotated[str, Field(min_length=1, max_length=MAX_EXAMPLE_CHARS)]
SubIntent = Annotated[str, Field(pattern=SUB_INTENT_PATTERN)]
Examples = (
    Annotated[list[Utterance], Field(max_length=MAX_EXAMPLES)]
    | Annotated[
        dict[SubIntent, Annotated[list[Utterance], Field(min_length=1)]], Field(max_length=MAX_EXAMPLES)
    ]
)


class ComposePart(BaseModel):
    """One part of a composition: a registered adapter and its weight (finite, at least 0)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    adapter: str
    weight: float = Field(json_schema_extra={"minimum": 0})


class AdapterRegistration(BaseModel):
    """A request to register an adapter folder, or a composition of registered adapters (API body and
    registry-file entry)."""

    model_config = ConfigDict(extra="forbid")

    # The name is checked by the registry, not here, so a bad name is answered as InvalidAdapterNameError
    # (OpenAI error shape, param "name") rather than as a generic schema error; the schema states the rule.
    name: str = Field(json_schema_extra={"pattern": NAME_PATTERN.pattern})
    path: str | None = Field(
        default=None,
        description="Adapter folder, relative to the adapter root or absolute inside it. Or `compose`.",
        json_schema_extra={"minLength": 1},
    )
    compose: list[ComposePart] | None = Field(
        default=None,
        description="Instead of `path`: registered adapters and their weights, served as one adapter holding "
        "their weighted sum (written once under the adapter root).",
    )
    description: str = Field(default="", max_length=1000)
    defaults: GenerationDefaults = Field(default_factory=GenerationDefaults)
    examples: Examples = Field(
        default_factory=list,
        description="Utterances the router learns this adapter from: a list (one label, the adapter's name), "
        'or sub-intents mapped to their utterances ({"refund": [...], "card-lost": [...]}, labels '
        "`<adapter>/<sub-intent>`, whose scores add up to the adapter's). They extend the router's training "
        "set.",
    )

    @field_validator("examples")
    @classmethod
    def _check_examples(cls, value: Examples) -> Examples:
        if isinstance(value, dict):
            if (total := sum(map(len, value.values()))) > MAX_EXAMPLES:
                raise ValueError(f"at most {MAX_EXAMPLES} examples in all, got {total}")
        return value


class AdapterSpec(BaseModel):
    """A registered, validated adapter. ``id`` is stable and never reused: the engine caches weights by id."""

    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    path: Path
    base_model: str
    rank: int
    alpha: float
    target_modules: list[str]
    size_bytes: int
    description: str
    defaults: GenerationDefaults
    examples: list[str] | dict[str, list[str]] = []
    created_at: int
    composition: list[ComposePart] | None = None
    """A registered composition's parts; ``path`` is then the folder written from them."""

    def labelled_examples(self) -> list[tuple[str, str]]:
        """(router label, utterance) pairs: the adapter's name, or ``<name>/<sub-intent>``."""
        if isinstance(self.examples, list):
            return [(self.name, text) for text in self.examples]
        return [(f"{self.name}/{sub}", text) for sub, texts in self.examples.items() for text in texts]


def check_adapter_name(name: str, reserved_names: set[str]) -> str:
    """Return ``name`` if clients may use it as a ``model``; reserved names compare case-insensitively."""
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidAdapterNameError(
            f"invalid adapter name {name!r}: use 1-64 characters from letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    if name.casefold() in {r.casefold() for r in reserved_names}:
        raise InvalidAdapterNameError(
            f"adapter name {name!r} is reserved (reserved: {', '.join(sorted(reserved_names))})"
        )
    return name
