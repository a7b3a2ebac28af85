"""Liveness and readiness. Liveness stays up while the engine is down, so an orchestrator does not kill a
service that will recover once its engine is back; readiness follows the engine."""

from __future__ import annotations

import time

from pydantic import BaseModel

from router.engine.base import Engine, EngineError
from router.errors import EngineUnavailableError
from router.serving.generation import InFlight


class HealthStatus(BaseModel):
    status: str
    in_flight: int
    started_at: int


class HealthServing:
    def __init__(self, engine: Engine, in_flight: InFlight) -> None:
        self._engine = engine
        self._in_flight = in_flight
        self._started_at = int(time.time())

    def status(self) -> HealthStatus:
        return HealthStatus(status="ok", in_flight=self._in_flight.total, started_at=self._started_at)

    async def ready(self) -> HealthStatus:
        try:
            await self._engine.check_health()
        except EngineError as exc:
            raise EngineUnavailableError(str(exc)) from exc
        return HealthStatus(status="ready", in_flight=self._in_flight.total, started_at=self._started_at)
