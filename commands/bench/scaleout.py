"""Throughput over 1, 2, … engine replicas: for each count, that many `vllm serve` replicas behind one router
process (remote engine backend), driven by vLLM's serving benchmark client as in `bench serve`.

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

from commands.bench.serve import BenchClient, ServeBench, run_client, warm_up
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
    """Each count in turn: start its replicas and a router, warm up, measure, stop everything. Count 0 is
    the service with its embedded engine: the baseline the remote hop is compared with. On a GPU, every
    engine takes the bench's ``gpu_memory_utilization`` of it (replicas sharing one GPU must fit together)."""
    settings = _replica_settings(bench)
    runs: dict[str, dict[str, Any]] = {}
    # One client process for every count: importing vLLM takes seconds.
    with BenchClient(work_dir) as client:
        for count in replica_counts:
            label = f"{count}-replica{'s' if count > 1 else ''}" if count else "in-process"
            on_step(f"{label}: starting")
            replicas = [replica_process(settings, work_dir / f"{label}-engine-{i}.log") for i in range(count)]
            router = None
            try:
                for replica in replicas:
                    replica.launch()
                for replica in replicas:
                    replica.wait_ready(600)
                data_dir = work_dir / f"{label}-router"
                data_dir.mkdir(parents=True, exist_ok=True)
                env = bench.service_env(data_dir)
                if replicas:
                    env["LORA_ROUTER_ENGINE"] = "remote"
                    env["LORA_ROUTER_ENGINE_URLS"] = json.dumps([r.url for r in replicas])
                router = ServiceProcess(env, work_dir / f"{label}-router.log").start(timeout_s=300)
                on_step(f"{label}: warming up the adapters")
                warm_up(router.url, bench)
                on_step(f"{label}: vLLM's benchmark client")
                run = run_client(client, bench, router, work_dir, label)
                replicas_seen = httpx.get(f"{router.url}/v1/engine", timeout=30).raise_for_status().json()
                run["requests_per_replica"] = [sum(r["requests"].values()) for r in replicas_seen["replicas"]]
                run["adapters_per_replica"] = [r["adapters_loaded"] for r in replicas_seen["replicas"]]
                runs[label] = run
            finally:
                if router is not None:
                    router.stop()
                for replica in replicas:
                    replica.stop()
    first = runs[next(iter(runs))]
    relative = {
        label: round(run["output_throughput"] / first["output_throughput"], 3)
        for label, run in runs.items()
        if run.get("output_throughput") and first.get("output_throughput")
    }
    return {
        "scenario": "throughput over engine replicas",
        **bench.describe(),
        "runs": runs,
        "output_throughput_vs_first": relative,
        "notes": [
            "All replicas and the router ran on this one machine, one replica count after the other; each "
            "replica is vLLM's OpenAI server started with `lora-router replica`'s flags.",
            "Warm-up: one request per adapter through the router, so each adapter is loaded on the replica "
            "its hash prefers before the measurement.",
        ],
        "environment": environment(),
    }
