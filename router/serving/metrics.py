"""``/metrics``: the counters and histograms serving keeps, plus gauges read off the live service."""

from __future__ import annotations

from lora_registry import AdapterRegistry
from router.engine.base import ManagedEngine
from router.observability.metrics import ServiceMetrics
from router.serving.admission import Admission
from router.serving.generation import InFlight


class MetricsServing:
    def __init__(
        self,
        metrics: ServiceMetrics,
        engine: ManagedEngine,
        registry: AdapterRegistry,
        in_flight: InFlight,
        admission: Admission,
    ) -> None:
        self._metrics = metrics
        self._engine = engine
        self._registry = registry
        self._in_flight = in_flight
        self._admission = admission

    async def exposition(self) -> bytes:
        m = self._metrics
        m.waiting.set(self._in_flight.waiting)
        m.running.set(self._in_flight.total)
        m.admitted.set(self._admission.admitted)
        m.refused.set(self._admission.refused)
        m.adapters_loaded.set(len(await self._engine.loaded_adapter_ids()))
        m.adapters_registered.set(len(self._registry.names()))
        m.engine_restarts.set(self._engine.restarts)
        m.set_replicas(self._engine.replicas())
        return m.exposition()
