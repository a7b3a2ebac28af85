"""Schemathesis fuzzes the service's own OpenAPI schema against the real engine for a bounded time: no 5xx,
no response outside the schema, no refusal of a schema-valid request without a reason, no acceptance of an
invalid one; and nothing the fuzzer sent changed the adapters it found or the live router.

Operations that would change state the rest of the suite relies on (unregistering, retraining) are left to
the README's full run against a throwaway service. Registering is fuzzed (its stateful phase finds real
adapter folders through `/v1/adapter-folders`), and what it registered is unregistered afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import httpx

from commands.process import REPO, ServiceProcess
from tests.router.service_checks import registry_and_router
from tests.service_config import ADMIN_KEY

CONFIG = Path(__file__).parent / "fuzz" / "schemathesis.toml"


def test_fuzzing_the_openapi_schema_finds_nothing(
    service: ServiceProcess, http: httpx.Client, tmp_path: Path
) -> None:
    before = registry_and_router(http)
    cli = Path(sys.executable).with_name("schemathesis")
    args = [str(cli), "--config-file", str(CONFIG), "run", f"{service.url}/openapi.json", "--checks", "all"]
    args += ["-H", f"Authorization: Bearer {ADMIN_KEY}", "--exclude-method", "DELETE"]
    args += ["--exclude-path", "/v1/router/train", "--max-examples", "5", "--max-time", "60", "--seed", "1"]
    junit = tmp_path / "junit.xml"
    args += ["--generation-database", "none", "--no-color", "--report", "junit"]
    args += ["--report-junit-path", str(junit)]
    done = subprocess.run(
        args,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    suite = ElementTree.parse(junit).getroot().find("testsuite")
    assert suite is not None and int(suite.get("tests", "0")) >= 10  # every operation was exercised
    assert suite.get("failures") == "0" and suite.get("errors") == "0"
    adapters, router = registry_and_router(http)
    assert router == before[1]
    assert {name: adapters[name] for name in before[0]} == before[0]  # same adapters under the same ids
    for name in adapters.keys() - before[0].keys():
        http.delete(f"/v1/adapters/{name}").raise_for_status()
    assert registry_and_router(http) == before
    assert http.get("/health").json()["admitted"] == 0
