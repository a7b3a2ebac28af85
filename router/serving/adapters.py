"""Adapter administration: register and unregister at runtime (hot swap), no restart."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from lora_registry import AdapterRegistration, AdapterRegistry, AdapterSpec
from lora_registry.composite import COMPOSITIONS_FOLDER
from router.engine.base import AdapterRef, Engine
from router.observability.metrics import ServiceMetrics
from router.protocol import AdapterDeleted, AdapterFolder, AdapterFolderList, AdapterInfo, AdapterList
from router.routing.compositions import Compositions
from router.serving.generation import InFlight

logger = logging.getLogger(__name__)


class AdapterServing:
    def __init__(
        self,
        registry: AdapterRegistry,
        compositions: Compositions,
        engine: Engine,
        in_flight: InFlight,
        metrics: ServiceMetrics,
    ) -> None:
        self._registry = registry
        self._compositions = compositions
        self._engine = engine
        self._in_flight = in_flight
        self._metrics = metrics

    async def _info(self, specs: list[AdapterSpec]) -> list[AdapterInfo]:
        loaded = await self._engine.loaded_adapter_ids()
        return [
            AdapterInfo.from_spec(
                spec, loaded=spec.id in loaded, requests_served=self._metrics.served(spec.name)
            )
            for spec in specs
        ]

    async def list(self) -> AdapterList:
        return AdapterList(data=await self._info(self._registry.list()))

    async def get(self, name: str) -> AdapterInfo:
        return (await self._info([self._registry.get(name)]))[0]

    async def folders(self) -> AdapterFolderList:
        found = await asyncio.to_thread(self._registry.folders)
        return AdapterFolderList(data=[AdapterFolder(path=p, registered_as=n) for p, n in found])

    async def register(self, registration: AdapterRegistration) -> AdapterInfo:
        # Validation reads files: keep it off the event loop so chat keeps streaming meanwhile.
        spec = await asyncio.to_thread(self._registry.register, registration)
        # Not loaded here: the engine loads it on first use, and evicts LRU beyond its cache size.
        return AdapterInfo.from_spec(spec, loaded=False)

    async def unregister(self, name: str) -> AdapterDeleted:
        # The adapter, then the registered compositions made from it.
        removed = await asyncio.to_thread(self._registry.unregister, name)
        made = [made for spec in removed for made in self._compositions.forget(spec.id)]
        # New requests already get 404; ones streaming on one finish before its weights go.
        for spec in [*removed, *made]:
            await self._in_flight.when_idle(spec.id, self._unloader(spec))
        return AdapterDeleted(id=removed[0].id, name=removed[0].name)

    def _unloader(self, spec: AdapterSpec) -> Callable[[], Coroutine[Any, Any, None]]:
        ref = AdapterRef.from_spec(spec)

        async def unload() -> None:
            await self._engine.remove_adapter(ref)
            logger.info("adapter %s (id %d) unloaded from the engine", ref.name, ref.id)
            if spec.path.parent.name == COMPOSITIONS_FOLDER:
                await asyncio.to_thread(self._compositions.remove_files, spec, self._registry.list())

        return unload
