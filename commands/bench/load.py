"""Overload on loopback: more streaming clients than the service admits, for a bounded time.

Each client chats in a loop (streamed, fixed output length, models taken in turn) and, when refused with
429, waits the ``Retry-After`` it was given, as a well-behaved client does. Reported: requests accepted and
refused, errors (5xx apart), latency of accepted requests, and the service's memory (its process tree).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil

from commands.bench.stats import summary_ms
from commands.client import async_service_client

PROMPT = [{"role": "user", "content": "Write a short note about the weather."}]


@dataclass
class LoadTally:
    accepted: int = 0
    refused: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    server_errors: int = 0
    latency_s: list[float] = field(default_factory=list)
    ttft_s: list[float] = field(default_factory=list)
    by_model: Counter[str] = field(default_factory=Counter)


def tree_rss(pid: int) -> int:
    """Resident memory of a process and its children (the engine core), in bytes."""
    root = psutil.Process(pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


async def _one_request(client: httpx.AsyncClient, model: str, max_tokens: int, tally: LoadTally) -> float:
    """One streamed chat; returns how long to wait before the next one (Retry-After when refused)."""
    body = {"model": model, "messages": PROMPT, "max_tokens": max_tokens, "ignore_eos": True, "stream": True}
    started = time.perf_counter()
    first: float | None = None
    try:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code == 429:
                tally.refused += 1
                await response.aread()
                return float(response.headers.get("retry-after", "1"))
            if response.status_code != 200:
                await response.aread()
                tally.errors[f"HTTP {response.status_code}"] += 1
                tally.server_errors += response.status_code >= 500
                return 0.0
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line.removeprefix("data: "))
                if "error" in event:  # a failure after the headers went out
                    tally.errors[f"stream error {event['error'].get('code')}"] += 1
                    tally.server_errors += 1
                    return 0.0
                if first is None and any(c.get("delta", {}).get("content") for c in event.get("choices", [])):
                    first = time.perf_counter() - started
    except httpx.HTTPError as exc:
        tally.errors[type(exc).__name__] += 1
        return 0.0
    tally.accepted += 1
    tally.by_model[model] += 1
    tally.latency_s.append(time.perf_counter() - started)
    if first is not None:
        tally.ttft_s.append(first)
    return 0.0


async def _client_loop(
    client: httpx.AsyncClient,
    models: list[str],
    offset: int,
    deadline: float,
    max_tokens: int,
    tally: LoadTally,
) -> None:
    turn = offset
    while time.monotonic() < deadline:
        wait = await _one_request(client, models[turn % len(models)], max_tokens, tally)
        turn += 1
        if wait:
            await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))


async def _sample(
    pid: int | None, every_s: float, samples: list[int], stop: asyncio.Event, tick: Callable[[], None]
) -> None:
    while not stop.is_set():
        if pid is not None:
            samples.append(tree_rss(pid))
        tick()
        try:
            await asyncio.wait_for(stop.wait(), every_s)
        except TimeoutError:
            pass


async def run_load(
    url: str,
    models: list[str],
    *,
    clients: int,
    duration_s: float,
    max_tokens: int,
    pid: int | None,
    api_key: str | None = None,
    on_tick: Callable[[float], None] = lambda elapsed_s: None,
) -> dict[str, Any]:
    """``clients`` clients for ``duration_s``; ``pid`` is the service's process, for its memory."""
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    tally = LoadTally()
    memory: list[int] = []
    stop = asyncio.Event()
    async with async_service_client(url, api_key, 300, limits=limits) as client:
        health_before = (await client.get("/health")).json()
        started = time.monotonic()
        sampler = asyncio.create_task(
            _sample(pid, 0.5, memory, stop, lambda: on_tick(time.monotonic() - started))
        )
        deadline = started + duration_s
        await asyncio.gather(
            *(_client_loop(client, models, i, deadline, max_tokens, tally) for i in range(clients))
        )
        elapsed = time.monotonic() - started
        stop.set()
        await sampler
        health_after = (await client.get("/health")).json()
    mib = 1024 * 1024
    return {
        "clients": clients,
        "admission_limit": health_before["admission_limit"],
        "duration_s": round(elapsed, 1),
        "models": models,
        "max_tokens": max_tokens,
        "accepted": tally.accepted,
        "refused_429": tally.refused,
        "errors": dict(tally.errors),
        "server_errors_5xx": tally.server_errors,
        "accepted_by_model": dict(tally.by_model),
        "accepted_per_s": round(tally.accepted / elapsed, 2),
        "output_tokens_per_s": round(tally.accepted * max_tokens / elapsed, 1),
        "latency": summary_ms(tally.latency_s) if tally.latency_s else None,
        "ttft": summary_ms(tally.ttft_s) if tally.ttft_s else None,
        "rss_mib": {
            "start": round(memory[0] / mib),
            "peak": round(max(memory) / mib),
            "end": round(memory[-1] / mib),
        }
        if memory
        else None,
        "service_refused_overloaded": (
            health_after["refused_overloaded"] - health_before["refused_overloaded"]
        ),
        "admitted_after": health_after["admitted"],
    }
