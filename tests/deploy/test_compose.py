"""deploy/compose.yaml, checked without a Docker daemon (and without the compose plugin, which this machine
lacks): variables resolve from .env.example, every reference is declared, and the services agree with each
other and with the service's settings."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from tests.deploy.common import (
    DEPLOY,
    ROOT,
    SHARED_SETTINGS,
    compose_env,
    compose_variables,
    interpolate,
    load_compose,
    replica_options,
    settings_from,
    url_host_port,
)

PLACEHOLDER = "change-me"


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


def engines(compose: dict) -> dict[str, dict]:
    return {
        k: v for k, v in compose["services"].items() if v.get("command", [])[:2] == ["lora-router", "replica"]
    }


def routers(compose: dict) -> dict[str, dict]:
    return {
        k: v for k, v in compose["services"].items() if v.get("command", [])[:2] == ["lora-router", "serve"]
    }


def test_topology(compose: dict) -> None:
    assert sorted(engines(compose)) == ["engine-0", "engine-1"]
    assert sorted(routers(compose)) == ["router-a", "router-b"]
    assert compose["services"]["postgres"]["image"].startswith("postgres:16")


def test_every_variable_is_in_env_example_and_used() -> None:
    variables = compose_variables()
    text = (DEPLOY / "compose.yaml").read_text()
    used = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))
    assert used == set(variables), f"compose uses {sorted(used)}, .env.example defines {sorted(variables)}"
    with pytest.raises(AssertionError, match="ENGINE_API_KEY"):
        interpolate("${ENGINE_API_KEY:?set it}", {})


def test_env_example_holds_placeholders_only() -> None:
    for name, value in compose_variables().items():
        assert PLACEHOLDER in value or value == "{}", f"{name} in .env.example is no placeholder"


def test_references_are_declared(compose: dict) -> None:
    services, volumes = compose["services"], compose.get("volumes", {})
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0] if isinstance(mount, str) else mount["source"]
            if not source.startswith((".", "/")):
                assert source in volumes, f"{name} mounts undeclared volume {source}"
        for target, condition in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown service {target}"
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[target], (
                    f"{name} waits for {target}, which has no healthcheck"
                )
        for secret in service.get("secrets", []):
            assert secret in compose.get("secrets", {}), f"{name} uses undeclared secret {secret}"
        assert "healthcheck" in service, f"{name} has no healthcheck"
        if "build" in service:
            context = (DEPLOY / service["build"]["context"]).resolve()
            assert context == ROOT, f"{name} builds from {context}, not the repository root"
            assert (context / service["build"]["dockerfile"]).is_file()
    host_ports = [p.split(":")[0] for s in services.values() for p in s.get("ports", [])]
    assert len(host_ports) == len(set(host_ports)), f"host ports collide: {host_ports}"


def test_routers_wait_for_the_database_and_every_engine(compose: dict) -> None:
    for name, router in routers(compose).items():
        needs = {t for t, c in router["depends_on"].items() if c["condition"] == "service_healthy"}
        assert needs == {"postgres", *engines(compose)}, name


def test_adapter_volume_is_shared_at_the_same_path(compose: dict) -> None:
    def target(service: dict) -> tuple[str, bool]:
        [mount] = [m for m in service["volumes"] if m.split(":")[0] == "adapters"]
        parts = mount.split(":")
        return parts[1], parts[2:] == ["ro"]

    root = {str(settings_from(compose_env(s)).resolved_adapter_root) for s in routers(compose).values()}
    assert len(root) == 1
    for name, router in routers(compose).items():
        assert target(router) == (*root, False), f"{name}: routers write default experts there"
    for name, engine in engines(compose).items():
        assert target(engine)[0] in root, f"{name} mounts the adapters elsewhere than the routers"


def test_engine_urls_name_every_engine(compose: dict) -> None:
    ports = {name: replica_options(s["command"])["port"] for name, s in engines(compose).items()}
    for name, router in routers(compose).items():
        settings = settings_from(compose_env(router))
        assert settings.engine == "remote"
        assert sorted(url_host_port(u) for u in settings.engine_urls) == sorted(ports.items()), name


def test_routers_and_replicas_read_the_same_settings(compose: dict) -> None:
    for router_name, router in routers(compose).items():
        r = settings_from(compose_env(router))
        for engine_name, engine in engines(compose).items():
            e = settings_from(compose_env(engine))
            for field in SHARED_SETTINGS:
                assert getattr(r, field) == getattr(e, field), f"{router_name} vs {engine_name}: {field}"
            assert e.kv_cache_gib >= 1
            # vLLM's own CPU LoRA ops apply the last slot's adapter to base-model tokens; the batched ops not.
            assert r.replica_identity_base or e.cpu_lora_ops == "batched", engine_name


def test_database_url_matches_postgres(compose: dict) -> None:
    postgres = compose_env(compose["services"]["postgres"])
    for name, router in routers(compose).items():
        url = urlsplit(settings_from(compose_env(router)).database_url or "")
        assert (url.scheme, url.hostname, url.port) == ("postgresql", "postgres", 5432), name
        assert (url.username, url.password) == (postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"])
        assert url.path == "/" + postgres["POSTGRES_DB"]
