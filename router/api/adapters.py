"""Adapter admin: ``GET/POST /v1/adapters``, ``GET/DELETE /v1/adapters/{name}``, ``/v1/adapter-folders``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from lora_registry import AdapterRegistration
from router.api.deps import Adapters
from router.protocol import AdapterDeleted, AdapterFolderList, AdapterInfo, AdapterList, ErrorResponse

router = APIRouter(tags=["adapters"])

ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (400, 404, 409, 422)}


@router.get("/v1/adapters")
async def list_adapters(adapters: Adapters) -> AdapterList:
    return await adapters.list()


# Not under /v1/adapters/: that path names adapters, and "folders" is a valid adapter name.
@router.get("/v1/adapter-folders")
async def list_adapter_folders(adapters: Adapters) -> AdapterFolderList:
    """Adapter folders under the adapter root, registered or not: what `POST /v1/adapters` can take."""
    return await adapters.folders()


@router.post("/v1/adapters", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def register_adapter(body: AdapterRegistration, adapters: Adapters) -> AdapterInfo:
    return await adapters.register(body)


@router.get("/v1/adapters/{name}", responses=ERRORS)
async def get_adapter(name: str, adapters: Adapters) -> AdapterInfo:
    return await adapters.get(name)


@router.delete("/v1/adapters/{name}", responses=ERRORS)
async def unregister_adapter(name: str, adapters: Adapters) -> AdapterDeleted:
    return await adapters.unregister(name)
