"""``GET /v1/models``: the base model, the adapters and ``auto``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from lora_registry import ComposePart


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
    composition: list[ComposePart] | None = None
    """Not OpenAI's: a registered composition's adapters and weights."""


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
