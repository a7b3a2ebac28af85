"""``GET /health`` (the process answers), ``GET /ready`` (the engine can serve), ``GET /v1/engine`` (how)."""

from __future__ import annotations

from fastapi import APIRouter

from router.api.deps import Health
from router.protocol import EngineInfo, ErrorResponse
from router.serving.health import HealthStatus

router = APIRouter(tags=["health"])
# Replica addresses are private: admin keys only.
admin_router = APIRouter(tags=["health"])


@router.get("/health")
async def health(health: Health) -> HealthStatus:
    return health.status()


@router.get("/ready", responses={503: {"model": ErrorResponse}})
async def ready(health: Health) -> HealthStatus:
    return await health.ready()


@admin_router.get("/v1/engine")
async def engine(health: Health) -> EngineInfo:
    """The engine backend's state and, for remote engines, each replica's load and adapters."""
    return health.engine()
