"""A scale-out deployment on loopback: two real `vllm serve` CPU replicas (started by `lora-router replica`'s
command), a private PostgreSQL database, and two router processes with the remote engine backend sharing
the database and one adapter folder."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from commands.process import ServiceProcess, replica_process
from router.settings import Settings
from tests.postgres import PostgresCluster
from tests.service_config import ADMIN_KEY, API_KEYS_SETTING, USER_KEY, bearer

REPLICA_KEY = "lr-test-replica-key"
SYNC_S = 0.5
SEEDED = "adapters:\n  - name: alpha\n    path: alpha\n  - name: beta\n    path: beta\n"


@dataclass
class Router:
    process: ServiceProcess
    admin: httpx.Client
    client: openai.OpenAI

    def engine(self) -> dict:
        return self.admin.get("/v1/engine").raise_for_status().json()


@dataclass
class Cluster:
    replicas: list[ServiceProcess]
    a: Router
    b: Router
    adapter_root: Path
    database_url: str

    @property
    def urls(self) -> list[str]:
        return [r.url for r in self.replicas]


def _router(name: str, env: dict[str, str], data: Path) -> Router:
    process = ServiceProcess({**env, "LORA_ROUTER_DATA_DIR": str(data)}, data / f"router-{name}.log")
    return Router(
        process,
        httpx.Client(base_url=process.url, timeout=120, headers=bearer(ADMIN_KEY)),
        openai.OpenAI(base_url=f"{process.url}/v1", api_key=USER_KEY, max_retries=0, timeout=120),
    )


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    base_model_dir: Path,
    adapter_library: Path,
    default_router_dir: Path,
    postgres: PostgresCluster,
) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("scaleout")
    adapter_root = work / "shared-adapters"
    shutil.copytree(adapter_library, adapter_root)
    # Explicit batch limits (above what these tests send at once), so vLLM's server is seen to take them.
    replica_settings = Settings(
        base_model_path=base_model_dir,
        kv_cache_gib=1,
        max_model_len=2048,
        engine_api_key=REPLICA_KEY,
        max_num_seqs=64,
        max_num_batched_tokens=4096,
    )
    replicas = [replica_process(replica_settings, work / f"replica-{i}.log") for i in range(2)]
    routers: list[Router] = []
    try:
        # Side by side: each replica takes about a minute to start on this CPU.
        for replica in replicas:
            replica.launch()
        for replica in replicas:
            replica.wait_ready(600)
        registry_file = work / "registry.yaml"
        registry_file.write_text(SEEDED)
        database_url = postgres.create_database()
        env = {
            "LORA_ROUTER_BASE_MODEL_PATH": str(base_model_dir),
            "LORA_ROUTER_ADAPTER_ROOT": str(adapter_root),
            "LORA_ROUTER_REGISTRY_FILE": str(registry_file),
            "LORA_ROUTER_ENGINE": "remote",
            "LORA_ROUTER_ENGINE_URLS": json.dumps([r.url for r in replicas]),
            "LORA_ROUTER_ENGINE_API_KEY": REPLICA_KEY,
            "LORA_ROUTER_DATABASE_URL": database_url,
            "LORA_ROUTER_SYNC_S": str(SYNC_S),
            "LORA_ROUTER_API_KEYS": API_KEYS_SETTING,
            "LORA_ROUTER_ADMIN_LOCALHOST": "false",
        }
        # A starts with the default router in its data folder and shares it; B starts with none of its own.
        data_a, data_b = work / "router-a", work / "router-b"
        shutil.copytree(default_router_dir, data_a / "routers")
        data_b.mkdir()
        routers = [_router("a", env, data_a), _router("b", env, data_b)]
        # Started together, as an orchestrator would: both seed the same registry file and default experts.
        for router in routers:
            router.process.launch()
        for router in routers:
            router.process.wait_ready(300)
        yield Cluster(replicas, routers[0], routers[1], adapter_root, database_url)
    finally:
        for router in routers:
            router.admin.close()
            router.process.stop()
        for replica in replicas:
            replica.stop()
