"""Several vLLM replicas behind the one engine interface, with adapter affinity and health checks.

Each adapter prefers replicas in rendezvous-hash order (highest hash of adapter and replica first), so every
router process picks the same replica for it without talking to the others, and adding or removing a
replica moves only the adapters that preferred it. Affinity keeps an adapter's weights warm on one replica;
the load bound (consistent hashing with bounded loads) keeps one hot adapter from swamping its replica: a
replica with ``load_factor`` times the mean outstanding requests (and at least ``min_load``) is passed over
for the next in the adapter's order.

A replica that fails a health check, or drops a connection, is out at once: its requests in flight end with
an EngineError, new ones go to the others. When its health check passes again it comes back empty and gets
adapters loaded again on first use (lazily).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections import Counter
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lora_registry import BaseModelInfo
from router.engine.base import AdapterRef, EngineError, GenerationStep, ReplicaStatus, SamplingOptions
from router.engine.identity_lora import IDENTITY_LORA_NAME, identity_adapter
from router.engine.remote import AdapterMissing, ReplicaClient, ReplicaUnreachable, lora_name

if TYPE_CHECKING:
    from router.settings import Settings

logger = logging.getLogger(__name__)


def rendezvous_order(key: str, urls: Sequence[str]) -> list[str]:
    """``urls`` from most to least preferred for ``key`` (highest random weight first)."""

    def weight(url: str) -> int:
        return int.from_bytes(hashlib.blake2b(f"{key}\0{url}".encode(), digest_size=8).digest(), "big")

    return sorted(urls, key=weight, reverse=True)


def choose_replica(key: str | None, outstanding: dict[str, int], *, load_factor: float, min_load: int) -> str:
    """The replica for one more request: the first in ``key``'s rendezvous order that is not over the load
    bound, else the least loaded one (also for ``key`` None, which has no affinity).

    The bound is ``load_factor`` times the mean load with this request counted, but never below ``min_load``:
    a replica batches a few requests at almost no cost, and moving an adapter means loading it elsewhere.
    """
    least_loaded = min(outstanding, key=outstanding.__getitem__)
    if key is None:
        return least_loaded
    mean = (sum(outstanding.values()) + 1) / len(outstanding)
    bound = max(min_load, math.ceil(load_factor * mean))
    return next(
        (url for url in rendezvous_order(key, list(outstanding)) if outstanding[url] < bound), least_loaded
    )


@dataclass
class Replica:
    client: ReplicaClient
    healthy: bool = False
    reason: str = "not checked yet"
    outstanding: int = 0
    cold_loads: int = 0
    recoveries: int = 0
    served: Counter[str] = field(default_factory=Counter)
    loaded: dict[int, AdapterRef] = field(default_factory=dict)
    # Set when the replica is taken out; requests streaming from it watch it. Replaced when it comes back.
    down: asyncio.Event = field(default_factory=asyncio.Event)
    loading: dict[int, asyncio.Lock] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.client.url


class ReplicaPool:
    """An ``Engine`` (and what serving reads of an engine's state) over ``vllm serve`` replicas."""

    def __init__(
        self,
        clients: Sequence[ReplicaClient],
        *,
        max_model_len: int,
        load_factor: float,
        min_load: int,
        health_s: float,
        base_adapter: AdapterRef | None = None,
    ) -> None:
        if not clients:
            raise ValueError("a replica pool needs at least one replica")
        self.max_model_len = max_model_len
        self._replicas = [Replica(client) for client in clients]
        self._load_factor = load_factor
        self._min_load = min_load
        self._health_s = health_s
        # On CPU replicas base-model requests go through an all-zero adapter (see identity_lora).
        self._base_adapter = base_adapter
        self._health_task: asyncio.Task[None] | None = None
        self._checks: set[asyncio.Task[None]] = set()
        self._stopped = False

    @classmethod
    def from_settings(cls, settings: Settings) -> ReplicaPool:
        base_adapter = None
        if settings.replica_identity_base:
            base = BaseModelInfo.from_folder(settings.resolved_base_model_path, settings.base_model_name)
            # Under the adapter root: the replicas load it by path, and only that folder is shared with them.
            folder = settings.resolved_adapter_root / ".lora-router" / IDENTITY_LORA_NAME
            base_adapter = identity_adapter(base, folder)
        clients = [
            ReplicaClient(
                url,
                base_model=settings.base_model_name,
                api_key=settings.engine_api_key,
                read_timeout_s=settings.engine_timeout_s,
            )
            for url in settings.engine_urls
        ]
        return cls(
            clients,
            max_model_len=settings.max_model_len,
            load_factor=settings.replica_load_factor,
            min_load=settings.replica_min_load,
            health_s=settings.replica_health_s,
            base_adapter=base_adapter,
        )

    # What health and metrics read of an engine.
    @property
    def state(self) -> str:
        if self._stopped:
            return "stopped"
        up = sum(r.healthy for r in self._replicas)
        return "ready" if up == len(self._replicas) else "degraded" if up else "down"

    @property
    def restarts(self) -> int:
        return sum(r.recoveries for r in self._replicas)

    @property
    def setup(self) -> None:
        return None

    def replicas(self) -> list[ReplicaStatus]:
        return [
            ReplicaStatus(
                url=r.url,
                healthy=r.healthy,
                reason=None if r.healthy else r.reason,
                outstanding=r.outstanding,
                requests=dict(r.served),
                adapters_loaded=sorted(a.name for a in r.loaded.values() if a != self._base_adapter),
                cold_loads=r.cold_loads,
                recoveries=r.recoveries,
            )
            for r in self._replicas
        ]

    async def start(self) -> None:
        await self._check_all()
        up = [r.url for r in self._replicas if r.healthy]
        logger.info("engine replicas up: %d of %d %s", len(up), len(self._replicas), up)
        self._health_task = asyncio.get_running_loop().create_task(self._watch(), name="replica-health")

    async def generate(
        self,
        request_id: str,
        prompt_token_ids: list[int],
        sampling: SamplingOptions,
        adapter: AdapterRef | None,
    ) -> AsyncGenerator[GenerationStep, None]:
        lora = adapter or self._base_adapter
        tried: set[str] = set()
        reloaded = False
        while True:
            replica = self._choose(adapter, tried)
            tried.add(replica.url)
            served = False
            replica.outstanding += 1
            try:
                if lora is not None:
                    await self._ensure_loaded(replica, lora)
                stream = replica.client.stream(request_id, prompt_token_ids, sampling, lora)
                async with aclosing(stream) as steps, aclosing(_until_down(steps, replica)) as guarded:
                    async for step in guarded:
                        if not served:
                            served = True
                            replica.served[adapter.name if adapter else replica.client.base_model] += 1
                        yield step
                return
            except ReplicaUnreachable as exc:
                # Nothing reached the replica: take it out and send the request to the next one.
                self._take_out(replica, str(exc))
            except AdapterMissing:
                # The replica restarted between two health checks and lost its adapters: load again, once.
                replica.loaded.clear()
                if reloaded:
                    raise
                reloaded = True
                tried.discard(replica.url)
            except EngineError:
                # It may have died: look now rather than at the next poll.
                check = asyncio.get_running_loop().create_task(self._check(replica))
                self._checks.add(check)
                check.add_done_callback(self._checks.discard)
                raise
            finally:
                replica.outstanding -= 1

    def _choose(self, adapter: AdapterRef | None, tried: set[str]) -> Replica:
        live = {r.url: r for r in self._replicas if r.healthy and r.url not in tried}
        if not live:
            down = "; ".join(f"{r.url}: {r.reason}" for r in self._replicas if not r.healthy)
            raise EngineError(f"no engine replica can take the request ({down or 'all tried'})")
        url = choose_replica(
            lora_name(adapter) if adapter else None,
            {url: r.outstanding for url, r in live.items()},
            load_factor=self._load_factor,
            min_load=self._min_load,
        )
        return live[url]

    async def _ensure_loaded(self, replica: Replica, adapter: AdapterRef) -> None:
        if adapter.id in replica.loaded:
            return
        lock = replica.loading.setdefault(adapter.id, asyncio.Lock())
        async with lock:
            if adapter.id in replica.loaded:
                return
            if await replica.client.load(adapter):
                replica.cold_loads += 1
                logger.info("adapter %s loaded on replica %s", adapter.name, replica.url)
            replica.loaded[adapter.id] = adapter

    async def add_adapter(self, adapter: AdapterRef) -> None:
        await self._ensure_loaded(self._choose(adapter, set()), adapter)

    async def remove_adapter(self, adapter: AdapterRef) -> None:
        for replica in self._replicas:
            if replica.loaded.pop(adapter.id, None) is not None and replica.healthy:
                try:
                    await replica.client.unload(adapter)
                except EngineError as exc:
                    # Unloading only frees a name on the replica; the id is never used again anyway.
                    logger.warning("%s", exc)

    async def loaded_adapter_ids(self) -> set[int]:
        base_id = self._base_adapter.id if self._base_adapter else None
        return {i for r in self._replicas if r.healthy for i in r.loaded if i != base_id}

    async def check_health(self) -> None:
        if (reason := self.unavailable()) is not None:
            raise EngineError(reason)

    def cpu_seconds(self) -> float | None:
        return None  # the replicas' processes are elsewhere

    def unavailable(self) -> str | None:
        if self._stopped:
            return "the service is shutting down"
        if any(r.healthy for r in self._replicas):
            return None
        return "no engine replica is up: " + "; ".join(f"{r.url}: {r.reason}" for r in self._replicas)

    def fail_requests(self, reason: str) -> None:
        for replica in self._replicas:
            self._take_out(replica, reason)

    def shutdown(self) -> None:
        self._stopped = True
        if self._health_task is not None:
            self._health_task.cancel()

    async def aclose(self) -> None:
        await asyncio.gather(*(r.client.aclose() for r in self._replicas))

    def _take_out(self, replica: Replica, reason: str) -> None:
        replica.reason = reason
        if replica.healthy:
            logger.error("replica %s taken out: %s", replica.url, reason)
            replica.healthy = False
            replica.down.set()
            # What it held is unknown from now on: a replica that comes back is filled again on demand.
            replica.loaded.clear()

    def _bring_back(self, replica: Replica) -> None:
        if replica.down.is_set():  # it was taken out, not just never checked
            replica.recoveries += 1
            replica.down = asyncio.Event()
            logger.info("replica %s is back", replica.url)
        replica.healthy = True
        replica.reason = "ok"

    async def _check(self, replica: Replica) -> None:
        try:
            await replica.client.check_health()
        except EngineError as exc:
            self._take_out(replica, str(exc))
        else:
            self._bring_back(replica)

    async def _check_all(self) -> None:
        await asyncio.gather(*(self._check(r) for r in self._replicas))

    async def _watch(self) -> None:
        while not self._stopped:
            await asyncio.sleep(self._health_s)
            await self._check_all()


async def _until_down(
    steps: AsyncGenerator[GenerationStep, None], replica: Replica
) -> AsyncGenerator[GenerationStep, None]:
    """``steps`` until the replica is taken out; then EngineError, even while a read is still waiting.

    One watcher per request, not a race per token: when the replica goes down during a read, the reading
    task is cancelled and the cancellation turned into the error, as ``asyncio.timeout`` turns its own.
    """
    task = asyncio.current_task()
    assert task is not None
    reading = gone = False

    def taken_out(_: object) -> None:
        nonlocal gone
        gone = True
        if reading:
            task.cancel()

    watcher = asyncio.ensure_future(replica.down.wait())
    watcher.add_done_callback(taken_out)
    try:
        while not gone:
            reading = True
            try:
                step = await anext(steps)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                # Ours only if nobody else (a client gone, a shutdown) asked for the task's cancellation too.
                if gone and task.uncancel() == 0:
                    break
                raise
            finally:
                reading = False
            yield step
        raise EngineError(f"engine replica {replica.url} went down: {replica.reason}")
    finally:
        watcher.remove_done_callback(taken_out)
        watcher.cancel()
