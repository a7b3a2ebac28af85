"""Cold start of a runtime-registered adapter, against a running service.

Each round registers the same adapter folder under a fresh name (POST /v1/adapters) and at once streams a
chat to it: the registry hands out a new integer id every time and vLLM keys LoRA weights by that id, so the
first request loads the weights (cold) however often the folder was used before. Then ``warm`` more chats on
the same adapter, then the adapter is unregistered. Timed: register → first token, the register call itself,
the first chat's TTFT (cold) and the later chats' TTFT (warm). Rounds run one request at a time.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from commands.bench.stats import summary_ms
from commands.client import service_client

PROMPT = [{"role": "user", "content": "Write a short note about the weather."}]


class ColdBenchError(RuntimeError):
    pass


def _error_message(response: httpx.Response) -> str:
    try:
        return response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return response.text


def first_token_at(client: httpx.Client, model: str, max_tokens: int) -> float:
    """Stream one chat; the ``perf_counter`` time its first text arrived (the opening chunk of a stream
    carries the role and the routing explanation, no text, and goes out before the engine's first token)."""
    body = {"model": model, "messages": PROMPT, "max_tokens": max_tokens, "ignore_eos": True, "stream": True}
    first: float | None = None
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            response.read()
            raise ColdBenchError(
                f"chat with {model}: HTTP {response.status_code}: {_error_message(response)}"
            )
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line.removeprefix("data: "))
            if "error" in event:
                raise ColdBenchError(f"chat with {model}: {event['error'].get('message')}")
            if first is None and any(c.get("delta", {}).get("content") for c in event.get("choices", [])):
                first = time.perf_counter()
    if first is None:
        raise ColdBenchError(f"chat with {model}: no text in the stream")
    return first


def _chat_ttft(client: httpx.Client, model: str, max_tokens: int) -> float:
    started = time.perf_counter()
    return first_token_at(client, model, max_tokens) - started


def one_round(client: httpx.Client, name: str, path: str, *, warm: int, max_tokens: int) -> dict[str, Any]:
    """Register ``path`` as ``name``, chat to it cold and ``warm`` times warm, unregister; seconds."""
    body = {"name": name, "path": path, "description": "bench cold: temporary"}
    started = time.perf_counter()
    response = client.post("/v1/adapters", json=body)
    registered = time.perf_counter()
    if response.status_code != 201:
        raise ColdBenchError(f"registering {name}: HTTP {response.status_code}: {_error_message(response)}")
    try:
        first = first_token_at(client, name, max_tokens)
        warm_ttft = [_chat_ttft(client, name, max_tokens) for _ in range(warm)]
    finally:
        client.delete(f"/v1/adapters/{name}")
    return {
        "name": name,
        "id": response.json()["id"],
        "register_s": registered - started,
        "register_to_first_token_s": first - started,
        "cold_ttft_s": first - registered,
        "warm_ttft_s": warm_ttft,
    }


def registered_names(client: httpx.Client) -> list[str]:
    response = client.get("/v1/adapters")
    if response.status_code != 200:
        raise ColdBenchError(f"listing adapters: HTTP {response.status_code}: {_error_message(response)}")
    return sorted(a["name"] for a in response.json()["data"])


def run_cold(
    url: str,
    path: str,
    *,
    prefix: str = "cold",
    rounds: int = 5,
    warm: int = 5,
    warmup_rounds: int = 1,
    max_tokens: int = 8,
    api_key: str | None = None,
    on_round: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """``warmup_rounds`` unmeasured rounds (one-time costs of the first LoRA load), then ``rounds`` measured
    ones; ``path`` is the adapter folder as the service sees it (relative to its adapter root)."""
    # A fresh tag per run: names are never reused, even after an interrupted run left one registered.
    tag = uuid.uuid4().hex[:6]
    measured: list[dict[str, Any]] = []
    with service_client(url, api_key, timeout_s=300) as client:
        before = registered_names(client)
        for i in range(warmup_rounds + rounds):
            result = one_round(client, f"{prefix}-{tag}-{i}", path, warm=warm, max_tokens=max_tokens)
            if i >= warmup_rounds:
                measured.append(result)
            on_round()
        after = registered_names(client)

    register = summary_ms([r["register_s"] for r in measured])
    to_first = summary_ms([r["register_to_first_token_s"] for r in measured])
    cold = summary_ms([r["cold_ttft_s"] for r in measured])
    warm_summary = summary_ms([t for r in measured for t in r["warm_ttft_s"]]) if warm else None
    ratio = round(cold["p50_ms"] / warm_summary["p50_ms"], 2) if warm_summary else None
    ids = [r["id"] for r in measured]
    return {
        "scenario": "cold start of a runtime-registered adapter",
        "url": url,
        "path": path,
        "rounds": rounds,
        "warmup_rounds": warmup_rounds,
        "warm_requests_per_round": warm,
        "max_tokens": max_tokens,
        "register": register,
        "register_to_first_token": to_first,
        "cold_ttft": cold,
        "warm_ttft": warm_summary,
        "cold_over_warm_ttft_p50": ratio,
        "per_round_ms": [
            {
                "name": r["name"],
                "id": r["id"],
                "register": round(r["register_s"] * 1000, 1),
                "register_to_first_token": round(r["register_to_first_token_s"] * 1000, 1),
                "cold_ttft": round(r["cold_ttft_s"] * 1000, 1),
                "warm_ttft": [round(t * 1000, 1) for t in r["warm_ttft_s"]],
            }
            for r in measured
        ],
        "adapter_ids": ids,
        "ids_distinct": len(set(ids)) == len(ids),
        "registry_unchanged": before == after,
        "notes": [
            "Each round registers the same folder under a new name; the new name gets a new integer id and "
            "vLLM caches LoRA weights by id, so the round's first chat loads the weights from disk.",
            "register_to_first_token = register call + cold TTFT, timed from the register call's start.",
            "One request at a time; TTFT is the time to the first text (the stream's opening role chunk "
            "does not count).",
        ],
    }
