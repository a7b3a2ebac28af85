"""Liveness and readiness. Liveness stays up while the engine is down, so an orchestrator does not kill a
service that will recover once its engine is back; readiness follows the engine."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Literal

from pydantic import BaseModel

from router.engine.base import EngineError, ManagedEngine
from router.errors import EngineUnavailableError
from router.protocol import EngineInfo, EngineSetupInfo, ReplicaInfo
from router.serving.admission import Admission
from router.serving.generation import InFlight


class HealthStatus(BaseModel):
    status: str
    in_flight: int
    admitted: int
    admission_limit: int
    refused_overloaded: int
    engine: str
    engine_restarts: int
    engine_setup: EngineSetupInfo | None
    """The in-process engine's dtype and LoRA ops; null for remote replicas (each logs its own)."""
    started_at: int


class HealthServing:
    def __init__(
        self,
        engine: ManagedEngine,
        backend: Literal["vllm", "remote"],
        in_flight: InFlight,
        admission: Admission,
    ) -> None:
        self._engine = engine
        self._backend = backend
        self._in_flight = in_flight
        self._admission = admission
        self._started_at = int(time.time())

    def status(self, status: str = "ok") -> HealthStatus:
        return HealthStatus(
            status=status,
            in_flight=self._in_flight.total,
            admitted=self._admission.admitted,
            admission_limit=self._admission.limit,
            refused_overloaded=self._admission.refused,
            engine=self._engine.state,
            engine_restarts=self._engine.restarts,
            engine_setup=EngineSetupInfo(**asdict(setup)) if (setup := self._engine.setup) else None,
            started_at=self._started_at,
        )

    async def ready(self) -> HealthStatus:
        try:
            await self._engine.check_health()
        except EngineError as exc:
            raise EngineUnavailableError(str(exc)) from exc
        return self.status("ready")

    def engine(self) -> EngineInfo:
        return EngineInfo(
            backend=self._backend,
            state=self._engine.state,
            restarts=self._engine.restarts,
            replicas=[ReplicaInfo(**asdict(r)) for r in self._engine.replicas()],
        )
