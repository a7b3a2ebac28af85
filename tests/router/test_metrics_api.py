"""`/metrics` against the real service: counters move by exactly what was routed, pinned and fell back, and
the histograms and gauges follow the traffic."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import openai
import yaml
from prometheus_client.parser import text_string_to_metric_families

from commands.process import ServiceProcess
from router.settings import DEFAULT_BASE_MODEL
from tests.router.service_checks import wait_for

REGISTRY_FILE = Path(__file__).resolve().parents[2] / "router" / "defaults" / "experts" / "registry.yaml"
SQL = "How many orders did each customer place last month? Give me the query."
EXTRACTION = "Book a table for 4 at Luigi's on Friday at 7pm, name Anna Schmidt, phone 555-0142."


def scrape(service: ServiceProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample as (name, sorted labels) -> value."""
    response = httpx.get(f"{service.url}/metrics", timeout=30)  # no key: scrapers need none
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def requests_of(metrics: dict, model: str, outcome: str) -> float:
    return metrics.get(("lora_router_requests_total", (("model", model), ("outcome", outcome))), 0.0)


def value(metrics: dict, name: str, **labels: str) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def ask(client: openai.OpenAI, text: str, model: str = "auto") -> dict:
    reply = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": text}],
        temperature=0,
        max_tokens=4,
        extra_body={"ignore_eos": True},
    )
    return reply.model_extra["routing"]


def test_counters_follow_routed_pinned_and_fallback_requests(
    service: ServiceProcess, client: openai.OpenAI, http: httpx.Client
) -> None:
    before = scrape(service)
    routed = ask(client, SQL)
    pinned = ask(client, "hello", model="alpha")
    base = ask(client, "hello", model=DEFAULT_BASE_MODEL)
    # A fallback for sure: the router picks `extract`, whose adapter is briefly gone.
    shipped = yaml.safe_load(REGISTRY_FILE.read_text())["adapters"]
    extract_entry = next(entry for entry in shipped if entry["name"] == "extract")
    assert http.delete("/v1/adapters/extract").status_code == 200
    try:
        fallback = ask(client, EXTRACTION)
    finally:
        assert http.post("/v1/adapters", json=extract_entry).status_code == 201
    after = scrape(service)

    assert (routed["model"], routed["fallback_reason"]) == ("sql", None)
    assert (fallback["label"], fallback["fallback_reason"]) == ("extract", "no_adapter")
    expected = {
        ("sql", "routed"): 1,
        ("alpha", "pinned"): 1,
        (DEFAULT_BASE_MODEL, "base"): 1,
        (DEFAULT_BASE_MODEL, "fallback"): 1,
    }
    for (model, outcome), n in expected.items():
        assert requests_of(after, model, outcome) - requests_of(before, model, outcome) == n, (model, outcome)
    assert pinned["mode"] == "pinned" and base["mode"] == "base"

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("lora_router_fallbacks_total", reason="no_adapter") == 1
    assert delta("lora_router_routing_latency_seconds_count") == 2  # the two `auto` requests
    assert delta("lora_router_routing_latency_seconds_sum") > 0
    assert delta("lora_router_time_to_first_token_seconds_count") == 4
    assert delta("lora_router_tokens_per_second_count") == 4  # 4 tokens each (ignore_eos)
    assert delta("lora_router_generated_tokens_total", model="sql") == 4
    assert value(after, "lora_router_adapters_registered") == len(http.get("/v1/adapters").json()["data"])
    assert value(after, "lora_router_adapters_loaded") >= 1  # alpha, at least, was just used

    # requests_served on the adapter list is the same count.
    served = {a["name"]: a["requests_served"] for a in http.get("/v1/adapters").json()["data"]}
    assert served["sql"] == sum(
        v
        for (n, labels), v in after.items()
        if n == "lora_router_requests_total" and ("model", "sql") in labels
    )


def test_queue_gauges_show_a_request_in_progress(service: ServiceProcess, client: openai.OpenAI) -> None:
    done = threading.Event()

    def long_stream() -> None:
        try:
            for _ in client.chat.completions.create(
                model="alpha",
                messages=[{"role": "user", "content": "count"}],
                max_tokens=48,
                stream=True,
                extra_body={"ignore_eos": True},
            ):
                pass
        finally:
            done.set()

    worker = threading.Thread(target=long_stream)
    worker.start()
    try:
        # Both gauges from one scrape: the short stream may end between two.
        seen: dict = {}

        def running() -> bool:
            seen.update(scrape(service))
            return value(seen, "lora_router_requests_running") >= 1

        assert wait_for(running, within_s=60)
        assert value(seen, "lora_router_requests_admitted") >= 1
    finally:
        worker.join(timeout=180)
    assert done.is_set()
    assert wait_for(lambda: value(scrape(service), "lora_router_requests_running") == 0, within_s=10)
    idle = scrape(service)
    assert value(idle, "lora_router_requests_waiting") == 0
