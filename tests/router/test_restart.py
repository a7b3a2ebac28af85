"""Stopping and starting the service: the registry survives a restart (SQLite; the registry file only adds
missing names), and SIGTERM lets requests in flight finish and takes the engine process down with it."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import psutil

from commands.process import ServiceProcess
from router.settings import Settings
from tests.router.service_checks import QUESTION, chat, still_serving, wait_for


def test_sigterm_drains_streams_and_a_restart_keeps_runtime_registrations(
    service: ServiceProcess, http: httpx.Client, client: openai.OpenAI
) -> None:
    # One stop and start for both halves: a service start is the dearest thing in the suite.
    created = http.post("/v1/adapters", json={"name": "kept", "path": "delta", "description": "survives"})
    assert created.status_code == 201, created.text
    # A registered composition survives too: its folder and its parts are all that is needed.
    compose = [{"adapter": "kept", "weight": 0.5}, {"adapter": "alpha", "weight": 0.5}]
    created = http.post("/v1/adapters", json={"name": "kept-blend", "compose": compose})
    assert created.status_code == 201, created.text
    http.delete("/v1/adapters/gamma").raise_for_status()  # seeded from the registry file, then removed
    before = {a["name"]: a["id"] for a in http.get("/v1/adapters").json()["data"]}
    question = [{"role": "user", "content": "Name a colour."}]
    answer = client.chat.completions.create(model="kept", messages=question, temperature=0, max_tokens=12)
    blend = client.chat.completions.create(
        model="kept-blend", messages=question, temperature=0, max_tokens=12
    )

    old_pid = service.pid
    assert old_pid is not None
    children = psutil.Process(old_pid).children(recursive=True)
    assert children  # the engine core at least
    tokens = 16  # about 4 s on the CPU engine: well inside the grace period
    body = {
        "model": "alpha",
        "messages": QUESTION,
        "max_tokens": tokens,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with ThreadPoolExecutor(1) as pool:
        streaming = pool.submit(chat, service.url, body)
        assert wait_for(lambda: http.get("/health").json()["in_flight"] == 1, within_s=30)
        asked = time.monotonic()
        code = service.terminate(timeout_s=60)
        stopped_after_s = time.monotonic() - asked
        outcome = streaming.result(timeout=60)
    # uvicorn finishes its shutdown, then re-raises the signal it caught, so the status says SIGTERM.
    assert code == -signal.SIGTERM, service.log_tail()
    assert "Application shutdown complete" in service.log_tail()
    # The stream that was running when SIGTERM came was served to its end.
    assert outcome.status == 200 and outcome.events[-1] == "[DONE]"
    assert not any("error" in event for event in outcome.events[:-1])
    assert outcome.events[-2]["usage"]["completion_tokens"] == tokens
    assert stopped_after_s < Settings().graceful_shutdown_s  # drained, not cut off at the deadline

    # The engine core, its worker and multiprocessing's resource tracker all end with the service (the
    # tracker a moment after it: it exits when its pipe closes).
    def survivors() -> list[psutil.Process]:
        return [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]

    assert wait_for(lambda: not survivors(), within_s=10), [c.cmdline() for c in survivors()]

    service.start()
    assert service.pid != old_pid
    after = {a["name"]: a["id"] for a in http.get("/v1/adapters").json()["data"]}
    # `gamma` is back: the registry file seeds names that are missing at start-up.
    assert {k: v for k, v in after.items() if k != "gamma"} == {k: v for k, v in before.items()}
    again = client.chat.completions.create(model="kept", messages=question, temperature=0, max_tokens=12)
    assert again.choices[0].message.content == answer.choices[0].message.content
    blended = client.chat.completions.create(
        model="kept-blend", messages=question, temperature=0, max_tokens=12
    )
    assert blended.choices[0].message.content == blend.choices[0].message.content
    http.delete("/v1/adapters/kept").raise_for_status()
    assert "kept-blend" not in {a["name"] for a in http.get("/v1/adapters").json()["data"]}
    still_serving(client)
