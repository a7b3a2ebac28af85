"""The service's Prometheus series.

They live in a registry of this object's own, not prometheus_client's global one, so two apps in one process
(tests, benchmarks) never share or clash over counters.
"""

from __future__ import annotations

from collections import Counter as Tally
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from router.engine.base import ReplicaStatus
from router.protocol import RoutingInfo

Outcome = Literal["routed", "fallback", "blend", "pinned", "composed", "base"]

# Routing is milliseconds on the CPU; generation on the CPU engine is seconds to minutes, on a GPU far less.
_ROUTING_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_RATE_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)


def outcome_of(routing: RoutingInfo) -> Outcome:
    if routing.mode == "auto":
        return "fallback" if routing.fallback_reason else "routed"
    return routing.mode


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._requests = Counter(
            "lora_router_requests",
            "Generation requests by the model that answered (adapter or base) and how it was chosen.",
            ["model", "outcome"],
            registry=r,
        )
        self._fallbacks = Counter(
            "lora_router_fallbacks", "`auto` requests that fell back, by reason.", ["reason"], registry=r
        )
        self._routing_latency = Histogram(
            "lora_router_routing_latency_seconds",
            "Time to classify one `auto` request.",
            buckets=_ROUTING_BUCKETS,
            registry=r,
        )
        self._ttft = Histogram(
            "lora_router_time_to_first_token_seconds",
            "From the request's arrival (routing included) to its first generated token.",
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self._tokens_per_second = Histogram(
            "lora_router_tokens_per_second",
            "Decode speed of one request: tokens after the first over the time they took.",
            buckets=_RATE_BUCKETS,
            registry=r,
        )
        self._generated = Counter(
            "lora_router_generated_tokens",
            "Tokens generated, by the model that answered.",
            ["model"],
            registry=r,
        )
        # Read from the live service at scrape time (see MetricsServing).
        self.waiting = Gauge(
            "lora_router_requests_waiting",
            "Queue depth: requests handed to the engine that have no first token yet.",
            registry=r,
        )
        self.running = Gauge("lora_router_requests_running", "Requests holding an engine stream.", registry=r)
        self.admitted = Gauge(
            "lora_router_requests_admitted", "Requests inside the admission limit.", registry=r
        )
        self.refused = Gauge(
            "lora_router_requests_refused_overloaded", "Requests answered 429 since start.", registry=r
        )
        self.adapters_loaded = Gauge(
            "lora_router_adapters_loaded", "Adapters whose weights the engine holds now.", registry=r
        )
        self.adapters_registered = Gauge(
            "lora_router_adapters_registered", "Adapters in the registry.", registry=r
        )
        self.engine_restarts = Gauge(
            "lora_router_engine_restarts", "Times the engine was replaced since start.", registry=r
        )
        replica = ["replica"]
        self._replica_up = Gauge(
            "lora_router_replica_up", "1 while the replica passes health checks.", replica, registry=r
        )
        self._replica_outstanding = Gauge(
            "lora_router_replica_outstanding",
            "Requests this router has on the replica now.",
            replica,
            registry=r,
        )
        self._replica_adapters = Gauge(
            "lora_router_replica_adapters_loaded",
            "Adapters this router loaded on the replica.",
            replica,
            registry=r,
        )
        self._replica_cold_loads = Gauge(
            "lora_router_replica_cold_loads",
            "Adapter loads onto the replica since start (first use there, or after it came back).",
            replica,
            registry=r,
        )
        self._replica_requests = Gauge(
            "lora_router_replica_requests",
            "Requests sent to the replica since start, by model (adapter or base).",
            ["replica", "model"],
            registry=r,
        )
        self._served: Tally[str] = Tally()

    def record_target(self, routing: RoutingInfo) -> None:
        outcome = outcome_of(routing)
        self._requests.labels(routing.model, outcome).inc()
        self._served[routing.model] += 1
        if outcome == "fallback":
            self._fallbacks.labels(routing.fallback_reason).inc()
        # Without a router (none trained yet) nothing was classified.
        if routing.mode == "auto" and routing.router_version is not None and routing.latency_ms is not None:
            self._routing_latency.observe(routing.latency_ms / 1000)

    def record_generation(
        self, model: str, *, first_token_s: float | None, tokens: int, decode_s: float
    ) -> None:
        if first_token_s is not None:
            self._ttft.observe(first_token_s)
        self._generated.labels(model).inc(tokens)
        if tokens > 1 and decode_s > 0:
            self._tokens_per_second.observe((tokens - 1) / decode_s)

    def set_replicas(self, replicas: list[ReplicaStatus]) -> None:
        for replica in replicas:
            self._replica_up.labels(replica.url).set(int(replica.healthy))
            self._replica_outstanding.labels(replica.url).set(replica.outstanding)
            self._replica_adapters.labels(replica.url).set(len(replica.adapters_loaded))
            self._replica_cold_loads.labels(replica.url).set(replica.cold_loads)
            for model, count in replica.requests.items():
                self._replica_requests.labels(replica.url, model).set(count)

    def served(self, model: str) -> int:
        """Requests this model answered since the service started."""
        return self._served[model]

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
