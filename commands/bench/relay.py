"""The remote engine's relay alone: how many streamed tokens one router process can take in from a replica.

A local stand-in for a replica (its own process, so its CPU is not counted) answers every completion request
with vLLM-shaped stream chunks, one per token, as fast as it can write them; the router's `ReplicaClient`
reads ``concurrency`` such streams at once. What comes out is the ceiling the relay puts on one router
process, in tokens per second and in its CPU time per token, with no engine in the way.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from commands.bench.serve import frontend_cpu_s
from commands.bench.stats import environment
from commands.process import ServiceProcess, free_port
from router.engine.base import SamplingOptions
from router.engine.remote import ReplicaClient


def _chunk(index: int, tokens: int) -> bytes:
    # The fields vLLM's completions stream sends with return_token_ids, one token per chunk.
    chunk = {
        "id": "cmpl-relay",
        "object": "text_completion",
        "created": 0,
        "model": "relay@1",
        "choices": [
            {
                "index": 0,
                "text": " token",
                "logprobs": None,
                "finish_reason": "length" if index == tokens - 1 else None,
                "stop_reason": None,
                "token_ids": [1000 + index],
                "prompt_token_ids": None,
            }
        ],
        "usage": None,
    }
    return f"data: {json.dumps(chunk)}\n\n".encode()


def serve_chunks(port: int, tokens: int) -> None:
    """The stand-in replica: HTTP/1.1 keep-alive, each request answered with ``tokens`` chunks then
    ``[DONE]``, written in bursts of 8 as an engine step's outputs would be."""
    body = [_chunk(i, tokens) for i in range(tokens)] + [b"data: [DONE]\n\n"]
    framed = [b"%x\r\n%s\r\n" % (len(part), part) for part in body]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            length = next(
                (int(line.split(":")[1]) for line in lines if line.lower().startswith("content-length")), 0
            )
            await reader.readexactly(length)
            if path != "/v1/completions":
                # What a router asks a replica besides completions (health, adapter loads): yes.
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
                )
                await writer.drain()
                continue
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            )
            for start in range(0, len(framed), 8):
                writer.write(b"".join(framed[start : start + 8]))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(main())


async def _timed_rounds(
    one: Callable[[int], Awaitable[int]],
    concurrency: int,
    tokens: int,
    rounds: int,
    cpu_s: Callable[[], float],
) -> list[dict[str, float]]:
    """``rounds`` + 1 rounds of ``concurrency`` streams (``one(i)`` reads stream i, returning the tokens it
    got), each checked to get every token; ``cpu_s`` reads the measured process's CPU time. Round 0 opens
    the connections and is not kept."""
    results = []
    for _ in range(rounds + 1):
        cpu, wall = cpu_s(), time.perf_counter()
        received = sum(await asyncio.gather(*(one(i) for i in range(concurrency))))
        cpu, wall = cpu_s() - cpu, time.perf_counter() - wall
        if received != concurrency * tokens:
            raise RuntimeError(f"{received} tokens came through of {concurrency * tokens}")
        results.append(
            {"tokens_per_s": round(received / wall), "cpu_us_per_token": round(1e6 * cpu / received, 2)}
        )
    return results[1:]


async def _client_rounds(url: str, concurrency: int, tokens: int, rounds: int) -> list[dict[str, float]]:
    """The replica client alone, in this process."""
    client = ReplicaClient(url, base_model="relay", api_key=None, read_timeout_s=60)
    sampling = SamplingOptions(max_tokens=tokens)

    async def one(i: int) -> int:
        return sum(
            [len(step.deltas) async for step in client.stream(f"relay-{i}", [1, 2, 3], sampling, None)]
        )

    try:
        return await _timed_rounds(one, concurrency, tokens, rounds, time.process_time)
    finally:
        await client.aclose()


async def _router_rounds(
    server: ServiceProcess, model: str, concurrency: int, tokens: int, rounds: int
) -> list[dict[str, float]]:
    """``concurrency`` streamed completions at a time through a whole router (HTTP in, relay, SSE out)."""
    body = {"model": model, "prompt": "Hello", "max_tokens": tokens, "temperature": 0, "stream": True}
    async with aiohttp.ClientSession(server.url, connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one(_: int) -> int:
            received = 0
            async with session.post("/v1/completions", json=body) as response:
                response.raise_for_status()
                async for line in response.content:
                    if line.startswith(b"data: {") and b'"text"' in line:
                        received += 1
            return received

        return await _timed_rounds(one, concurrency, tokens, rounds, lambda: frontend_cpu_s(server))


def _summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    return {
        "runs": runs,
        "median_tokens_per_s": statistics.median(r["tokens_per_s"] for r in runs),
        "median_cpu_us_per_token": statistics.median(r["cpu_us_per_token"] for r in runs),
    }


def run_relay_bench(
    concurrency: int,
    tokens: int,
    rounds: int,
    work_dir: Path,
    base_model_dir: Path | None = None,
    on_step: Callable[[str], None] = lambda what: None,
) -> dict[str, Any]:
    """The replica client alone; with ``base_model_dir`` (its tokenizer and chat template) also a whole
    router process over the same stand-in, its own process's CPU per token (logs in ``work_dir``)."""
    port = free_port()
    code = f"from commands.bench.relay import serve_chunks; serve_chunks({port}, {tokens})"
    # It answers any path but completions with 200: /health tells it is up.
    replica = ServiceProcess(
        {},
        work_dir / "stand-in.log",
        [sys.executable, "-c", code],
        port=port,
        ready_path="/health",
    )
    result: dict[str, Any] = {
        "scenario": "relay ceiling of one router process",
        "concurrency": concurrency,
        "tokens_per_stream": tokens,
    }
    try:
        on_step("the replica client alone")
        replica.start(timeout_s=30)
        result["client"] = _summary(asyncio.run(_client_rounds(replica.url, concurrency, tokens, rounds)))
        if base_model_dir is not None:
            on_step("through a whole router")
            env = {
                "LORA_ROUTER_DATA_DIR": str(work_dir / "router-data"),
                "LORA_ROUTER_BASE_MODEL_PATH": str(base_model_dir),
                "LORA_ROUTER_ENGINE": "remote",
                "LORA_ROUTER_ENGINE_URLS": json.dumps([replica.url]),
                "LORA_ROUTER_DEFAULT_EXPERTS": "false",
                "LORA_ROUTER_API_KEYS": "{}",
                "LORA_ROUTER_MAX_ADMITTED": str(max(64, 2 * concurrency)),
            }
            router = ServiceProcess(env, work_dir / "router.log").start(timeout_s=300)
            try:
                listed = httpx.get(f"{router.url}/v1/models", timeout=30).raise_for_status().json()["data"]
                model = next(m["id"] for m in listed if m["id"] != "auto")  # the base model
                result["router"] = _summary(
                    asyncio.run(_router_rounds(router, model, concurrency, tokens, rounds))
                )
            finally:
                router.stop()
    finally:
        replica.stop()
    notes = [
        "A local stand-in replica (its own process) streams vLLM-shaped completion chunks, one per "
        "token, as fast as it can; the router's replica client reads `concurrency` streams at once. CPU "
        "time is the reading process's, per token; the first round opens the connections and is not kept."
    ]
    if "router" in result:
        notes.append(
            "router: the same stand-in behind a whole router process (remote engine), streamed completions "
            "through it; CPU is the router process's own (HTTP in, relay, SSE out), per token."
        )
    return {**result, "notes": notes, "environment": environment()}
