"""Request ids and JSON logs against the real service: the id a reply carries finds its log line, and that
line says which model answered and why."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from commands.process import ServiceProcess
from tests.router.service_checks import wait_for
from tests.service_config import USER_KEY, bearer

SQL = "How many orders did each customer place last month? Give me the query."


def access_lines(log: Path, request_id: str) -> list[dict]:
    lines = []
    for line in log.read_text(errors="replace").splitlines():
        if request_id in line and line.startswith("{"):
            entry = json.loads(line)
            if entry.get("request_id") == request_id and entry["logger"] == "lora_router.access":
                lines.append(entry)
    return lines


def test_request_id_is_echoed_and_names_the_log_line(service: ServiceProcess) -> None:
    request_id = "client-trace-0042"
    response = httpx.post(
        f"{service.url}/v1/chat/completions",
        headers={**bearer(USER_KEY), "X-Request-Id": request_id},
        json={"model": "auto", "messages": [{"role": "user", "content": SQL}], "max_tokens": 2},
        timeout=120,
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == request_id
    assert wait_for(lambda: access_lines(service.log_path, request_id), within_s=10)
    (entry,) = access_lines(service.log_path, request_id)
    assert entry["http"]["status"] == 200 and entry["http"]["path"] == "/v1/chat/completions"
    assert entry["http"]["duration_ms"] > 0
    assert (entry["model"], entry["outcome"], entry["label"]) == ("sql", "routed", "sql")
    assert entry["level"] == "info" and entry["time"].endswith("+00:00")


def test_unusable_request_ids_are_replaced_and_errors_get_one_too(service: ServiceProcess) -> None:
    forged = "evil\tid with spaces"
    response = httpx.post(
        f"{service.url}/v1/chat/completions",
        headers={**bearer(USER_KEY), "X-Request-Id": forged},
        json={"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]},
        timeout=60,
    )
    assert response.status_code == 404
    made = response.headers["x-request-id"]
    assert made != forged and len(made) == 32 and made.isalnum()
    assert wait_for(lambda: access_lines(service.log_path, made), within_s=10)
    (entry,) = access_lines(service.log_path, made)
    assert entry["http"]["status"] == 404
    # Two requests never share an id the service made up.
    again = httpx.get(f"{service.url}/health", timeout=10)
    assert again.headers["x-request-id"] not in {made, forged}
