"""Throughput over 1, 2, … engine replicas: for each count, that many `vllm serve` replicas behind one router
process (remote engine backend), driven by vLLM's serving benchmark client as in `bench serve`: all started
once, then measured in turn and repeated.

On one machine the replicas share its cores, so more replicas only help where one replica leaves cores idle;
across machines (one replica per GPU) each brings its own. What this measures here is the routing layer's cost
and the affinity it keeps, not a speed-up the hardware cannot give.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from commands.bench.serve import BenchClient, ServeBench, compared, interleaved_runs
from commands.bench.stats import environment
from commands.process import ServiceProcess, replica_process
from router.settings import Settings


def _replica_settings(bench: ServeBench) -> Settings:
    engine = bench.engine
    return Settings(
        gpu_memory_utilization=engine["gpu_memory_utilization"],
        base_model_path=bench.base_model_dir,
        base_model_name=bench.base_model_name,
        max_loras=engine["max_loras"],
        max_cpu_loras=engine["max_cpu_loras"],
        max_lora_rank=engine["max_lora_rank"],
        max_model_len=engine["max_model_len"],
        kv_cache_gib=engine["kv_cache_gib"],
        dtype=engine["dtype"],
        seed=engine["seed"],
    )


def run_replica_bench(
    bench: ServeBench,
    replica_counts: list[int],
    work_dir: Path,
    on_step: Callable[[str], None] = lambda what: None,
) -> dict[str, Any]:
    """Every count's replicas and router started (one after the other: on a GPU each engine sizes its KV
    cache from the memory free when it starts), warmed up, then measured in turn, ``bench.repeats`` times
    each. Count 0 is the service with its embedded engine: the baseline the remote hop is compared with. On
    a GPU every engine takes the bench's ``gpu_memory_utilization`` of it, so all of them must fit at once."""
    settings = _replica_settings(bench)
    engines: list[ServiceProcess] = []
    routers: dict[str, ServiceProcess] = {}
    # One client process for every run: importing vLLM takes seconds.
    with BenchClient(work_dir) as client:
        try:
            for count in replica_counts:
                label = f"{count}-replica{'s' if count > 1 else ''}" if count else "in-process"
                on_step(f"{label}: starting")
                replicas = [
                    replica_process(settings, work_dir / f"{label}-engine-{i}.log") for i in range(count)
                ]
                engines += replicas
                for replica in replicas:
                    replica.launch()
                    replica.wait_ready(600)
                data_dir = work_dir / f"{label}-router"
                data_dir.mkdir(parents=True, exist_ok=True)
                env = bench.service_env(data_dir)
                if replicas:
                    env["LORA_ROUTER_ENGINE"] = "remote"
                    env["LORA_ROUTER_ENGINE_URLS"] = json.dumps([r.url for r in replicas])
                routers[label] = ServiceProcess(env, work_dir / f"{label}-router.log").start(timeout_s=600)
            runs = interleaved_runs(routers, bench, client, work_dir, on_step)
            spread_over: dict[str, dict[str, list[int]]] = {}
            for label, router in routers.items():
                seen = httpx.get(f"{router.url}/v1/engine", timeout=30).raise_for_status().json()
                spread_over[label] = {
                    "requests_per_replica": [sum(r["requests"].values()) for r in seen.get("replicas", [])],
                    "adapters_per_replica": [r["adapters_loaded"] for r in seen.get("replicas", [])],
                }
        finally:
            for process in [*routers.values(), *engines]:
                process.stop()
    first = next(iter(runs))
    summary = compared(runs, baseline=first)
    return {
        "scenario": "throughput over engine replicas",
        **bench.describe(),
        "runs": runs,
        "mean": summary["mean"],
        "ratio_vs_first": summary["ratio"],
        "ratio_spread": summary["ratio_spread"],
        "replicas": spread_over,
        "notes": [
            "All replicas and routers ran on this one machine, all started before any measurement; then "
            "vLLM's serving client ran against one router at a time, in turn (every other round in "
            "reverse), `repeats` times each (after one unmeasured run each). The ratio is of the means "
            "against the first configuration; ratio_spread is the lowest and highest ratio of one run to the "
            "first's run of the same round. "
            "Each replica is vLLM's OpenAI server started with `lora-router replica`'s flags.",
            "Warm-up: one request per adapter through each router, so each adapter is loaded on the replica "
            "its hash prefers before the measurement.",
        ],
        "environment": environment(),
    }
