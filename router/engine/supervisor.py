"""Keeps an engine serving: notices when it dies or stops making progress, ends the requests in flight on it
with a clean error, and builds a new one in the background, so the service recovers without a restart.

While the replacement starts (about 30 s for the CPU default) readiness is 503 and new generation requests get
503 with ``Retry-After``; adapters need no reloading, because every request names its adapter's folder and the
new engine loads it on first use.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import aclosing
from enum import StrEnum

from router.engine.base import (
    AdapterRef,
    Engine,
    EngineError,
    EngineSetup,
    GenerationStep,
    ReplicaStatus,
    SamplingOptions,
)

logger = logging.getLogger(__name__)

# CPU seconds per second below which the engine's processes count as idle (a busy engine uses a whole core).
BUSY_CPU = 0.05


class EngineState(StrEnum):
    STARTING = "starting"
    READY = "ready"
    RESTARTING = "restarting"
    STOPPED = "stopped"


class EngineSupervisor:
    """An ``Engine`` that delegates to the engine ``build`` made last and replaces it when it fails.

    A hang is told from slow work by progress, not by time per request: the engine is hung when requests are
    in flight, none of them produced a step, and its processes used (almost) no CPU, for ``hang_s`` seconds
    of watchdog time. A long step is busy (a mixed-adapter prefill on the CPU can take half a minute); a
    stopped or deadlocked engine is idle. Watchdog time only counts while the event loop runs, so a loop
    blocked by other work does not look like a stuck engine either.
    """

    def __init__(
        self,
        build: Callable[[], Engine],
        *,
        setup: EngineSetup | None = None,
        max_model_len: int,
        hang_s: float,
        poll_s: float = 0.5,
        rebuild_backoff_s: float = 5.0,
    ) -> None:
        self.max_model_len = max_model_len
        self.setup = setup
        self._build = build
        self._hang_s = hang_s
        self._poll_s = poll_s
        self._backoff_s = rebuild_backoff_s
        self._engine: Engine | None = None
        self.state = EngineState.STARTING
        self.reason = "the engine is starting"
        self.restarts = 0
        self._active = 0
        self._progressed = False
        self._stalled_s = 0.0
        self._cpu_s: float | None = None
        self._watchdog: asyncio.Task[None] | None = None
        # Set when a request sees the engine fail, so the watchdog looks now rather than at its next poll.
        self._look_now = asyncio.Event()
        self._builder = ThreadPoolExecutor(1, thread_name_prefix="engine-build")
        self._building: Future[Engine] | None = None

    async def start(self) -> None:
        self._engine = await self._build_engine()
        self.state = EngineState.READY
        self._watchdog = asyncio.get_running_loop().create_task(self._watch(), name="engine-watchdog")

    def _live(self) -> Engine | None:
        """The engine serving now; None while it starts, restarts or after shutdown."""
        return self._engine if self.state is EngineState.READY else None

    def _ready_engine(self) -> Engine:
        if (engine := self._live()) is None:
            raise EngineError(self.reason)
        return engine

    async def generate(
        self,
        request_id: str,
        prompt_token_ids: list[int],
        sampling: SamplingOptions,
        adapter: AdapterRef | None,
    ) -> AsyncGenerator[GenerationStep, None]:
        engine = self._ready_engine()
        if self._active == 0:
            self._stalled_s = 0.0
        self._active += 1
        try:
            async with aclosing(engine.generate(request_id, prompt_token_ids, sampling, adapter)) as steps:
                async for step in steps:
                    self._progressed = True
                    yield step
        except EngineError:
            self._look_now.set()
            raise
        finally:
            self._active -= 1

    def replicas(self) -> list[ReplicaStatus]:
        return []

    def cpu_seconds(self) -> float | None:
        return self._engine.cpu_seconds() if self._engine is not None else None

    async def add_adapter(self, adapter: AdapterRef) -> None:
        # While restarting there is nothing to load into; the new engine loads the adapter on first use.
        if (engine := self._live()) is not None:
            await engine.add_adapter(adapter)

    async def remove_adapter(self, adapter: AdapterRef) -> None:
        if (engine := self._live()) is not None:
            await engine.remove_adapter(adapter)

    async def loaded_adapter_ids(self) -> set[int]:
        engine = self._live()
        return await engine.loaded_adapter_ids() if engine is not None else set()

    async def check_health(self) -> None:
        await self._ready_engine().check_health()

    def unavailable(self) -> str | None:
        if (engine := self._live()) is None:
            return self.reason
        reason = engine.unavailable()
        if reason is not None:
            self._look_now.set()
        return reason

    def fail_requests(self, reason: str) -> None:
        if self._engine is not None:
            self._engine.fail_requests(reason)

    def shutdown(self) -> None:
        self.state = EngineState.STOPPED
        self.reason = "the service is shutting down"
        if self._watchdog is not None:
            self._watchdog.cancel()
        engines = [self._engine] if self._engine is not None else []
        # An engine still being built would outlive the service as an orphan process: wait, then stop it.
        if self._building is not None and not self._building.cancel():
            try:
                engines.append(self._building.result())
            except Exception:
                logger.exception("the engine being built when the service stopped failed")
        for engine in engines:
            engine.shutdown()
        self._builder.shutdown(wait=False)

    async def _build_engine(self) -> Engine:
        # Built in a thread: the event loop keeps answering /health and /ready while an engine starts.
        self._building = self._builder.submit(self._build)
        engine = await asyncio.wrap_future(self._building)
        self._building = None
        return engine

    async def _watch(self) -> None:
        last = time.monotonic()
        while self.state is not EngineState.STOPPED:
            try:
                await asyncio.wait_for(self._look_now.wait(), self._poll_s)
            except TimeoutError:
                pass
            self._look_now.clear()
            now = time.monotonic()
            # A tick that came late means the loop was busy: count at most two polls of it.
            waited, last = min(now - last, 2 * self._poll_s), now
            fault = await self._fault(waited)
            if fault is not None:
                await self._replace(fault)
                last = time.monotonic()

    async def _fault(self, waited_s: float) -> str | None:
        assert self._engine is not None
        try:
            await self._engine.check_health()
        except EngineError as exc:
            return str(exc)
        if self._progressed or self._active == 0:
            self._progressed, self._stalled_s, self._cpu_s = False, 0.0, None
            return None
        # No output this tick. The CPU is sampled only now, off the normal path (it walks the process tree):
        # the first sample is a baseline, and an engine still using CPU is busy, not stuck.
        previous, self._cpu_s = self._cpu_s, self._engine.cpu_seconds()
        if self._cpu_s is not None and (previous is None or self._cpu_s - previous > BUSY_CPU * waited_s):
            self._stalled_s = 0.0
            return None
        self._stalled_s += waited_s
        if self._stalled_s >= self._hang_s:
            stalled, waiting = f"{self._stalled_s:.0f}", self._active
            return f"engine idle (no output, no CPU) for {stalled} s, {waiting} request(s) waiting"
        return None

    async def _replace(self, fault: str) -> None:
        logger.error("engine failed (%s); starting a new one", fault)
        self.state = EngineState.RESTARTING
        self.reason = f"the engine is restarting after a failure: {fault}"
        old, self._engine = self._engine, None
        assert old is not None
        # Requests still waiting on the old engine end now with an error rather than with the shutdown.
        old.fail_requests(self.reason)
        await asyncio.to_thread(old.shutdown)
        while self.state is EngineState.RESTARTING:
            try:
                self._engine = await self._build_engine()
            except Exception:
                logger.exception("engine restart failed; trying again in %.0f s", self._backoff_s)
                await asyncio.sleep(self._backoff_s)
                continue
            self.restarts += 1
            self._progressed, self._stalled_s, self._cpu_s = False, 0.0, None
            self.state = EngineState.READY
            logger.info("engine is back (restart %d)", self.restarts)
