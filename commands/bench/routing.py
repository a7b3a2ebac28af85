"""Routing cost: classifier latency per message (single and batched) and, against a running service, its
share of time-to-first-token at concurrency 1."""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import cycle, islice
from typing import Any

from classifier import IntentClassifier
from commands.bench.stats import summary_ms

WARMUP = 20


def classifier_latency(
    classifier: IntentClassifier,
    texts: list[str],
    *,
    n: int,
    batch_size: int,
    on_step: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    sample = list(islice(cycle(texts), n))
    for text in sample[:WARMUP]:
        classifier.predict_proba(text)
    single: list[float] = []
    for text in sample:
        started = time.perf_counter()
        classifier.predict_proba(text)
        single.append(time.perf_counter() - started)
        on_step()
    batches: list[float] = []
    for i in range(0, len(sample) - batch_size + 1, batch_size):
        started = time.perf_counter()
        classifier.predict_proba(sample[i : i + batch_size])
        batches.append(time.perf_counter() - started)
    batched = summary_ms(batches)
    return {
        "single": summary_ms(single),
        "batched": {
            **batched,
            "batch_size": batch_size,
            "per_message_p50_ms": round(batched["p50_ms"] / batch_size, 3),
        },
        "max_words": max(len(t.split()) for t in texts),
    }


def service_ttft(
    url: str,
    texts: list[str],
    *,
    n: int,
    on_step: Callable[[], None] = lambda: None,
    api_key: str | None = None,
) -> dict[str, Any]:
    """TTFT of `auto` chats at concurrency 1, and the routing time the service reports for each."""
    import openai

    client = openai.OpenAI(base_url=f"{url.rstrip('/')}/v1", api_key=api_key or "none", max_retries=0)
    ttft: list[float] = []
    routing_ms: list[float] = []
    for text in islice(cycle(texts), n):
        started = time.perf_counter()
        stream = client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": text}], stream=True, max_tokens=4
        )
        first_token = None
        for chunk in stream:
            # `routing` is the service's own field: the client keeps it among the unknown ones.
            routing = (chunk.model_extra or {}).get("routing")
            if routing:
                routing_ms.append(routing["latency_ms"] / 1000)
            if first_token is None and chunk.choices and chunk.choices[0].delta.content:
                first_token = time.perf_counter() - started
        if first_token is not None:
            ttft.append(first_token)
        on_step()
    ttft_summary, routing_summary = summary_ms(ttft), summary_ms(routing_ms)
    return {
        "ttft": ttft_summary,
        "routing": routing_summary,
        "routing_share_of_ttft_p50": round(routing_summary["p50_ms"] / ttft_summary["p50_ms"], 4),
    }
