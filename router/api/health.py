"""``GET /health`` (the process answers) and ``GET /ready`` (the engine can serve)."""

from __future__ import annotations

from fastapi import APIRouter

from router.api.deps import Health
from router.protocol import ErrorResponse
from router.serving.health import HealthStatus

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(health: Health) -> HealthStatus:
    return health.status()


@router.get("/ready", responses={503: {"model": ErrorResponse}})
async def ready(health: Health) -> HealthStatus:
    return await health.ready()
