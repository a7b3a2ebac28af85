"""What an operator registers, and what the registry hands out for serving."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from lora_registry.errors import InvalidAdapterNameError
from lora_registry.response_format import ResponseFormat

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
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


class AdapterRegistration(BaseModel):
    """A request to register an adapter folder (API body and registry-file entry)."""

    model_config = ConfigDict(extra="forbid")

    # The name is checked by the registry, not here, so a bad name is answered as InvalidAdapterNameError
    # (OpenAI error shape, param "name") rather than as a generic schema error; the schema states the rule.
    name: str = Field(json_schema_extra={"pattern": NAME_PATTERN.pattern})
    path: str = Field(
        description="Adapter folder, relative to the adapter root or absolute inside it.",
        json_schema_extra={"minLength": 1},
    )
    description: str = Field(default="", max_length=1000)
    defaults: GenerationDefaults = Field(default_factory=GenerationDefaults)
    examples: list[Annotated[str, Field(min_length=1, max_length=MAX_EXAMPLE_CHARS)]] = Field(
        default_factory=list,
        max_length=MAX_EXAMPLES,
        description="Utterances for the router label named like this adapter; they extend its training set.",
    )


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
    examples: list[str] = []
    created_at: int


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
