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
import subprocess
import sys
import time
from typing import Any

from commands.bench.stats import environment
from commands.process import free_port
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
            lines = head.decode("latin-1").lower().split("\r\n")
            length = next(int(line.split(":")[1]) for line in lines if line.startswith("content-length"))
            await reader.readexactly(length)
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


async def _rounds(url: str, concurrency: int, tokens: int, rounds: int) -> list[dict[str, float]]:
    client = ReplicaClient(url, base_model="relay", api_key=None, read_timeout_s=60)
    sampling = SamplingOptions(max_tokens=tokens)

    async def one(i: int) -> int:
        return sum(
            [len(step.deltas) async for step in client.stream(f"relay-{i}", [1, 2, 3], sampling, None)]
        )

    results = []
    try:
        # Round 0 opens the connections and is not kept.
        for _ in range(rounds + 1):
            cpu, wall = time.process_time(), time.perf_counter()
            received = sum(await asyncio.gather(*(one(i) for i in range(concurrency))))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            if received != concurrency * tokens:
                raise RuntimeError(f"the relay took in {received} tokens of {concurrency * tokens}")
            results.append(
                {"tokens_per_s": round(received / wall), "cpu_us_per_token": round(1e6 * cpu / received, 2)}
            )
    finally:
        await client.aclose()
    return results[1:]


def run_relay_bench(concurrency: int, tokens: int, rounds: int) -> dict[str, Any]:
    port = free_port()
    code = f"from commands.bench.relay import serve_chunks; serve_chunks({port}, {tokens})"
    server = subprocess.Popen([sys.executable, "-c", code])
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                runs = asyncio.run(_rounds(url, concurrency, tokens, rounds))
                break
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
    finally:
        server.kill()
        server.wait()
    return {
        "scenario": "relay ceiling of one router process",
        "concurrency": concurrency,
        "tokens_per_stream": tokens,
        "runs": runs,
        "median_tokens_per_s": statistics.median(r["tokens_per_s"] for r in runs),
        "median_cpu_us_per_token": statistics.median(r["cpu_us_per_token"] for r in runs),
        "notes": [
            "A local stand-in replica (its own process) streams vLLM-shaped completion chunks, one per "
            "token, as fast as it can; the router's replica client reads `concurrency` streams at once. CPU "
            "time is this process's (the client's), per token; the first round opens the connections and is "
            "not kept."
        ],
        "environment": environment(),
    }
