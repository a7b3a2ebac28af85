"""The engine process dies or hangs under traffic: requests in flight end with a clean error within seconds,
readiness turns 503, new chats get 503 with Retry-After, and the service brings up a new engine by itself.

These tests take the shared service's engine down and wait until it is back, so the suite goes on after them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import psutil

from commands.process import ServiceProcess
from router.settings import DEFAULT_BASE_MODEL
from tests.router.service_checks import (
    QUESTION,
    Outcome,
    assert_error,
    chat,
    registry_and_router,
    still_serving,
    wait_for,
)
from tests.service_config import ENGINE_HANG_S, USER_KEY, bearer

# Long enough to still be running whenever the fault comes (a CPU engine makes ~20 tokens/s per request).
LONG = {"messages": QUESTION, "max_tokens": 1500, "ignore_eos": True}
ENGINE_START_S = 180


def engine_core(service: ServiceProcess) -> psutil.Process:
    assert service.pid is not None
    cores = [
        child
        for child in psutil.Process(service.pid).children(recursive=True)
        if "EngineCore" in child.name() or "EngineCore" in " ".join(child.cmdline())
    ]
    assert len(cores) == 1, cores
    return cores[0]


def gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def engine_processes(core: psutil.Process) -> list[psutil.Process]:
    """The engine core and what it started (on the CPU, a worker process)."""
    return [core, *core.children(recursive=True)]


def health(http: httpx.Client) -> dict[str, Any]:
    return http.get("/health").json()


def ready_status(service: ServiceProcess) -> int:
    return httpx.get(f"{service.url}/ready", timeout=10).status_code


def start_traffic(
    service: ServiceProcess, http: httpx.Client, pool: ThreadPoolExecutor
) -> list[Future[Outcome]]:
    """Streams on two adapters and the base model, and one non-streaming chat, all generating."""
    calls = [("alpha", True), ("gamma", True), (DEFAULT_BASE_MODEL, True), ("alpha", False)]
    baseline = health(http)["in_flight"]
    futures = [pool.submit(chat, service.url, {**LONG, "model": m, "stream": s}) for m, s in calls]
    assert wait_for(lambda: health(http)["in_flight"] == baseline + len(calls), within_s=60)
    time.sleep(1.0)  # every one of them past its first tokens
    return futures


def assert_ended_with_engine_error(outcomes: list[Outcome], since: float, within_s: float) -> None:
    for outcome in outcomes:
        assert outcome.ended - since < within_s, f"ended {outcome.ended - since:.1f} s after the fault"
        if outcome.status == 200:  # a stream: its headers were sent, so the error is its last event
            assert outcome.events[-1] == "[DONE]"
            error = outcome.events[-2]["error"]
            assert any("choices" in event for event in outcome.events[:-2])  # it was streaming
        else:
            assert outcome.status == 503
            error = outcome.events[0]["error"]
        assert error["code"] == "engine_unavailable" and error["type"] == "server_error", error


@dataclass
class UnderTraffic:
    """The shared service's engine with requests in flight on it, about to be faulted."""

    before: Any
    restarts: int
    traffic: list[Future[Outcome]]
    core: psutil.Process
    old_processes: list[psutil.Process]

    def assert_recovers(self, service: ServiceProcess, http: httpx.Client, client: openai.OpenAI) -> None:
        """Refused with 503 and Retry-After while a new engine starts, then everything served as before, and
        nothing of the old engine left behind."""
        assert wait_for(lambda: health(http)["engine"] == "restarting", within_s=2)
        refused = httpx.post(
            f"{service.url}/v1/chat/completions",
            json={"model": "alpha", "messages": QUESTION, "max_tokens": 2},
            headers=bearer(USER_KEY),
            timeout=30,
        )
        assert_error(refused, 503, "engine_unavailable")
        assert int(refused.headers["retry-after"]) >= 1
        assert wait_for(lambda: ready_status(service) == 200, within_s=ENGINE_START_S, every_s=1.0)
        assert health(http)["engine_restarts"] == self.restarts + 1
        for model in ("alpha", DEFAULT_BASE_MODEL, "auto"):
            still_serving(client, model)
        assert all(gone(p) for p in self.old_processes), self.old_processes
        assert registry_and_router(http) == self.before


@contextmanager
def under_traffic(service: ServiceProcess, http: httpx.Client) -> Iterator[UnderTraffic]:
    before, restarts = registry_and_router(http), health(http)["engine_restarts"]
    with ThreadPoolExecutor(4) as pool:
        traffic = start_traffic(service, http, pool)
        core = engine_core(service)
        yield UnderTraffic(before, restarts, traffic, core, engine_processes(core))


def test_killed_engine_fails_in_flight_requests_then_comes_back(
    service: ServiceProcess, http: httpx.Client, client: openai.OpenAI
) -> None:
    with under_traffic(service, http) as engine:
        engine.core.kill()
        killed = time.monotonic()
        assert wait_for(lambda: ready_status(service) == 503, within_s=5)
        outcomes = [future.result(timeout=60) for future in engine.traffic]
    assert_ended_with_engine_error(outcomes, killed, within_s=5)
    assert health(http)["in_flight"] == 0
    engine.assert_recovers(service, http, client)


def test_hung_engine_is_detected_and_replaced(
    service: ServiceProcess, http: httpx.Client, client: openai.OpenAI
) -> None:
    with under_traffic(service, http) as engine:
        engine.core.suspend()  # alive, holding its requests, producing nothing
        hung = time.monotonic()
        try:
            outcomes = [future.result(timeout=ENGINE_HANG_S + 30) for future in engine.traffic]
        finally:
            if not gone(engine.core):
                engine.core.resume()
    assert_ended_with_engine_error(outcomes, hung, within_s=ENGINE_HANG_S + 5)
    assert "engine idle (no output, no CPU)" in json.dumps([o.events for o in outcomes])
    assert ready_status(service) == 503
    engine.assert_recovers(service, http, client)  # the stopped engine was killed, not left behind
