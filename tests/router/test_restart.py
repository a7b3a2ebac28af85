"""The registry survives a restart of the service (SQLite); the registry file only adds missing names."""

from __future__ import annotations

import httpx
import openai

from router.process import ServiceProcess


def test_runtime_registrations_survive_a_restart(
    service: ServiceProcess, http: httpx.Client, client: openai.OpenAI
) -> None:
    created = http.post("/v1/adapters", json={"name": "kept", "path": "delta", "description": "survives"})
    assert created.status_code == 201, created.text
    http.delete("/v1/adapters/gamma").raise_for_status()  # seeded from the registry file, then removed
    before = {a["name"]: a["id"] for a in http.get("/v1/adapters").json()["data"]}
    question = [{"role": "user", "content": "Name a colour."}]
    answer = client.chat.completions.create(model="kept", messages=question, temperature=0, max_tokens=12)

    old_pid = service.pid
    service.restart()
    assert service.pid != old_pid

    after = {a["name"]: a["id"] for a in http.get("/v1/adapters").json()["data"]}
    # `gamma` is back: the registry file seeds names that are missing at start-up.
    assert {k: v for k, v in after.items() if k != "gamma"} == {k: v for k, v in before.items()}
    again = client.chat.completions.create(model="kept", messages=question, temperature=0, max_tokens=12)
    assert again.choices[0].message.content == answer.choices[0].message.content
    http.delete("/v1/adapters/kept").raise_for_status()
