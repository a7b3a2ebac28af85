"""``/v1/adapters`` (admin): the adapters the registry holds, their folders, and what deleting one returns."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from lora_registry import AdapterSpec


class AdapterInfo(AdapterSpec):
    object: Literal["adapter"] = "adapter"
    loaded: bool
    """Whether the engine holds its weights now (loaded on first use, evicted LRU)."""
    requests_served: int = 0
    """Generation requests it answered since the service started."""

    @classmethod
    def from_spec(cls, spec: AdapterSpec, *, loaded: bool, requests_served: int = 0) -> AdapterInfo:
        return cls(**spec.model_dump(), loaded=loaded, requests_served=requests_served)


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
