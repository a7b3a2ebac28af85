"""Session-wide real components: the prepared base model and real LoRA adapters made with PEFT.

Artifacts are cached under `.cache/tests` (git-ignored) so a second run does not rebuild them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from commands.prepare import prepare_base_model
from commands.process import ServiceProcess
from router.settings import DEFAULT_BASE_MODEL
from tests.adapters import make_lora_adapter
from tests.postgres import PostgresCluster
from tests.service_config import ADMIN_KEY, API_KEYS_SETTING, ENGINE_HANG_S, MAX_ADMITTED, USER_KEY, bearer

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("LORA_ROUTER_TEST_CACHE", REPO / ".cache" / "tests"))

# SmolLM2-135M-Instruct's template cannot show tools; the shared service uses this one, which can.
TOOLS_TEMPLATE = REPO / "tests" / "router" / "tools_template.jinja"

# Adapter folders the suite shares: name -> seed of its random weights.
# The default experts (sql, math, extract) are the shipped, trained ones: the service installs them itself.
SHARED_ADAPTERS = {"alpha": 1, "beta": 2, "gamma": 3, "delta": 4}


@pytest.fixture(scope="session")
def base_model_dir() -> Path:
    target = CACHE / "models" / DEFAULT_BASE_MODEL
    prepare_base_model(target)
    return target


@pytest.fixture(scope="session")
def adapter_library(base_model_dir: Path) -> Path:
    """A folder of real adapters (read-only for tests: copy before mutating)."""
    library = CACHE / "adapters"
    for name, seed in SHARED_ADAPTERS.items():
        folder = library / name
        if not (folder / "adapter_model.safetensors").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            make_lora_adapter(base_model_dir, folder, seed=seed)
    return library


# Adapters the shared service starts with (from its registry file); `delta` is left for runtime registration.
SEEDED_REGISTRY = """\
adapters:
  - name: alpha
    path: alpha
    description: test adapter alpha
  - name: beta
    path: beta
    description: test adapter beta
    defaults:
      max_tokens: 12
  - name: gamma
    path: gamma
"""


@pytest.fixture(scope="session")
def default_router_dir(base_model_dir: Path) -> Path:
    """The default router, trained by the real `lora-router train-router` on the shipped intents; retrained
    only when those examples, the classifier's code or the settings change."""
    examples = REPO / "router" / "defaults" / "intents.yaml"
    data = CACHE / "router-data"
    stamp = data / "trained-from.sha256"
    sources = [examples, REPO / "router" / "settings.py", *sorted((REPO / "classifier").glob("*.py"))]
    digest = hashlib.sha256(b"".join(hashlib.sha256(p.read_bytes()).digest() for p in sources)).hexdigest()
    if not (stamp.is_file() and stamp.read_text() == digest):
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        cli = Path(sys.executable).with_name("lora-router")
        env = {**os.environ, "LORA_ROUTER_DATA_DIR": str(data)}
        subprocess.run([str(cli), "train-router", str(examples)], env=env, check=True)
        stamp.write_text(digest)
    return data / "routers"


@pytest.fixture(scope="session")
def service_data_dir(
    tmp_path_factory: pytest.TempPathFactory, adapter_library: Path, default_router_dir: Path
) -> Path:
    data = tmp_path_factory.mktemp("service-data")
    shutil.copytree(adapter_library, data / "adapters")
    shutil.copytree(default_router_dir, data / "routers")
    (data / "registry.yaml").write_text(SEEDED_REGISTRY)
    return data


@pytest.fixture(scope="session")
def service(
    request: pytest.FixtureRequest, service_data_dir: Path, base_model_dir: Path
) -> Iterator[ServiceProcess]:
    """One real service (real vLLM CPU engine) for the whole session."""
    env = {
        "LORA_ROUTER_DATA_DIR": str(service_data_dir),
        "LORA_ROUTER_BASE_MODEL_PATH": str(base_model_dir),
        "LORA_ROUTER_REGISTRY_FILE": str(service_data_dir / "registry.yaml"),
        "LORA_ROUTER_KV_CACHE_GIB": "1",
        "LORA_ROUTER_MAX_MODEL_LEN": "2048",
        # Greedy answers alone and inside a mixed batch are compared token for token (test_chat_api,
        # test_served_experts): float32 keeps vLLM's own batch-shape rounding below a greedy flip, bfloat16
        # does not (README, "The CPU engine's dtype"). open_service runs the machine's automatic dtype.
        "LORA_ROUTER_DTYPE": "float32",
        "LORA_ROUTER_API_KEYS": API_KEYS_SETTING,
        "LORA_ROUTER_ADMIN_LOCALHOST": "false",  # whatever the caller's shell says
        "LORA_ROUTER_MAX_ADMITTED": str(MAX_ADMITTED),
        "LORA_ROUTER_ENGINE_HANG_S": str(ENGINE_HANG_S),
        # The model's own template plus a Hermes-style tools block, so tool calls round-trip here; it renders
        # a conversation without tools exactly as the model's own does (tests/router/test_tools.py checks).
        "LORA_ROUTER_CHAT_TEMPLATE": str(TOOLS_TEMPLATE),
        "LORA_ROUTER_TOOL_PARSER": "hermes",
    }
    proc = ServiceProcess(env, service_data_dir / "service.log").launch()
    # A start is three processes importing vLLM one after the other, one core's work: on two cores the open
    # service, when this session uses it too, starts beside this one for little more than the time of one.
    if any("open_service" in item.fixturenames for item in request.session.items):
        request.getfixturevalue("open_service_process").launch()
    proc.wait_ready(300)
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def open_service_process(
    tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path, default_router_dir: Path
) -> Iterator[ServiceProcess]:
    """A second real service, set up as `make serve` sets one up: no API keys, the admin endpoints open to
    loopback clients, the shipped experts and default router; not started yet (see `service`)."""
    data = tmp_path_factory.mktemp("open-service-data")
    shutil.copytree(default_router_dir, data / "routers")
    env = {
        "LORA_ROUTER_DATA_DIR": str(data),
        "LORA_ROUTER_BASE_MODEL_PATH": str(base_model_dir),
        "LORA_ROUTER_KV_CACHE_GIB": "1",
        "LORA_ROUTER_API_KEYS": "{}",  # whatever the caller's shell says
        "LORA_ROUTER_ADMIN_LOCALHOST": "true",
    }
    proc = ServiceProcess(env, data / "service.log")
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def open_service(open_service_process: ServiceProcess) -> ServiceProcess:
    """The open service, started: the checks of the `make serve` setup (the README's examples, clients
    sending placeholder keys) all share this one."""
    if open_service_process.pid is None:
        open_service_process.launch()
    return open_service_process.wait_ready(300)


@pytest.fixture(scope="session")
def client(service: ServiceProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{service.url}/v1", api_key=USER_KEY, max_retries=0, timeout=120)


@pytest.fixture
def async_client(service: ServiceProcess) -> openai.AsyncOpenAI:
    # One per test: each test runs its own event loop, and a client's connection pool belongs to the loop
    # that first used it ("Event loop is closed" in the next test otherwise).
    return openai.AsyncOpenAI(base_url=f"{service.url}/v1", api_key=USER_KEY, max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def http(service: ServiceProcess) -> Iterator[httpx.Client]:
    """Plain HTTP with an admin key: it reaches every endpoint (test_auth.py covers the others)."""
    with httpx.Client(base_url=service.url, timeout=120, headers=bearer(ADMIN_KEY)) as c:
        yield c


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A private PostgreSQL server for the session; a test takes a database of its own (`create_database`)."""
    cluster = PostgresCluster()
    yield cluster
    cluster.stop()
