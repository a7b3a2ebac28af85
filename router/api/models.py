"""``GET /v1/models``."""

from __future__ import annotations

from fastapi import APIRouter

from router.api.deps import Models
from router.protocol import ModelList

router = APIRouter(tags=["models"])


@router.get("/v1/models")
async def list_models(models: Models) -> ModelList:
    return models.list()
