"""Two routers over two vLLM replicas and one PostgreSQL database: adapter affinity measured from the
replicas' counts, registrations and retrained routers shared between routers, and a replica killed
mid-traffic, then brought back. The kill and the return come last, in that order."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import openai
import psycopg
import pytest
from transformers import AutoTokenizer

from lora_registry.composite import COMPOSITIONS_FOLDER
from router.engine.base import AdapterRef
from router.engine.remote import lora_name
from router.engine.replicas import rendezvous_order
from router.settings import DEFAULT_BASE_MODEL
from tests.router.scaleout.conftest import SYNC_S, Cluster, Router
from tests.router.service_checks import wait_for
from tests.service_config import USER_KEY

pytestmark = pytest.mark.timeout(1200)

ASK = [{"role": "user", "content": "Say something."}]
QUESTION = "What is the capital of France?"


def preferred_replica(cluster: Cluster, adapter: dict) -> str:
    ref = AdapterRef(name=adapter["name"], id=adapter["id"], path=Path(adapter["path"]))
    return rendezvous_order(lora_name(ref), cluster.urls)[0]


def balanced_adapters(cluster: Cluster, per_replica: int) -> dict[str, list[str]]:
    """Register copies of one adapter folder (each name gets a new id, so a new place in the hash) until each
    replica is the first choice of ``per_replica`` of them: a load the hash spreads evenly."""
    chosen: dict[str, list[str]] = {url: [] for url in cluster.urls}
    for i in range(40):
        if all(len(names) == per_replica for names in chosen.values()):
            return chosen
        body = {"name": f"aff-{i}", "path": "alpha"}
        adapter = cluster.a.admin.post("/v1/adapters", json=body).raise_for_status().json()
        names = chosen[preferred_replica(cluster, adapter)]
        if len(names) < per_replica:
            names.append(adapter["name"])
        else:
            cluster.a.admin.delete(f"/v1/adapters/{adapter['name']}").raise_for_status()
    raise AssertionError(f"no balanced set after 40 registrations: {chosen}")


def served(cluster: Cluster) -> dict[str, Counter[str]]:
    """Requests each replica got, by model, summed over both routers."""
    totals: dict[str, Counter[str]] = {url: Counter() for url in cluster.urls}
    for router in (cluster.a, cluster.b):
        for replica in router.engine()["replicas"]:
            totals[replica["url"]].update(replica["requests"])
    return totals


def vllm_finished(url: str) -> float:
    """Requests the replica itself counts as finished (its own Prometheus series)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(float(v) for v in re.findall(r"^vllm:request_success_total\{[^}]*\} (\S+)$", text, re.M))


def test_requests_for_one_adapter_land_on_one_replica(cluster: Cluster) -> None:
    chosen = balanced_adapters(cluster, per_replica=2)
    home = {name: url for url, names in chosen.items() for name in names}
    before, finished_before = served(cluster), {url: vllm_finished(url) for url in cluster.urls}

    async def load() -> None:
        clients = [
            openai.AsyncOpenAI(base_url=f"{r.process.url}/v1", api_key=USER_KEY, max_retries=0, timeout=300)
            for r in (cluster.a, cluster.b)
        ]
        # Each router has four requests out at a time, one per adapter: both replicas equally busy.
        limits = [asyncio.Semaphore(4), asyncio.Semaphore(4)]

        async def one(i: int, name: str) -> None:
            async with limits[i % 2]:
                reply = await clients[i % 2].chat.completions.create(
                    model=name, messages=ASK, max_tokens=4, temperature=0
                )
                assert reply.model == name

        await asyncio.gather(*(one(i, name) for i in range(6) for name in home))

    asyncio.run(load())
    after = served(cluster)
    counts = {name: Counter({u: after[u][name] - before[u][name] for u in cluster.urls}) for name in home}
    total = sum(sum(c.values()) for c in counts.values())
    assert total == 6 * len(home)
    on_home = sum(counts[name][home[name]] for name in home)
    affinity = on_home / total
    print(f"affinity: {on_home}/{total} = {affinity:.0%}; per adapter {dict(counts)}")
    assert affinity >= 0.9, counts
    # The replicas' own counters agree with what the routers say they sent them.
    for url in cluster.urls:
        sent = sum(after[url].values()) - sum(before[url].values())
        assert vllm_finished(url) - finished_before[url] == sent


def test_constraints_logprobs_and_sampling_extras_cross_to_the_replicas(
    cluster: Cluster, base_model_dir: Path
) -> None:
    client, http = cluster.a.client, cluster.a.admin
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 16}},
        "required": ["city"],
        "additionalProperties": False,
    }
    held = client.chat.completions.create(
        model="SmolLM2-135M-Instruct",
        messages=[{"role": "user", "content": QUESTION}],
        temperature=0,
        max_tokens=24,
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
    )
    assert set(json.loads(held.choices[0].message.content)) == {"city"}
    chosen = client.chat.completions.create(
        model="beta", messages=ASK, max_tokens=4, extra_body={"structured_outputs": {"choice": ["yes", "no"]}}
    )
    assert chosen.choices[0].message.content in ("yes", "no")
    ask = {
        "model": "alpha",
        "messages": ASK,
        "temperature": 0,
        "max_tokens": 8,
        "logprobs": True,
        "top_logprobs": 2,
    }
    whole = client.chat.completions.create(**ask).choices[0].logprobs.content
    streamed = [
        t
        for c in client.chat.completions.create(**ask, stream=True)
        if c.choices and c.choices[0].logprobs
        for t in c.choices[0].logprobs.content
    ]
    assert [t.model_dump() for t in streamed] == [t.model_dump() for t in whole]
    assert all(len(t.top_logprobs) == 2 and t.top_logprobs[0].token == t.token for t in whole)
    # The base model's greedy answer starts "The capital...": with that token banned, it cannot.
    (the,) = AutoTokenizer.from_pretrained(str(base_model_dir)).encode("The", add_special_tokens=False)
    france = {**ask, "model": "SmolLM2-135M-Instruct", "messages": [{"role": "user", "content": QUESTION}]}
    assert client.chat.completions.create(**france).choices[0].logprobs.content[0].token == "The"
    banned = client.chat.completions.create(**france, logit_bias={str(the): -100})
    assert banned.choices[0].logprobs.content[0].token != "The"
    # What the replica's engine cannot compile comes back as the router's own 400, naming the field.
    broken = {
        "type": "json_schema",
        "json_schema": {"name": "b", "schema": {"properties": {"a": {"$ref": "#/x"}}}},
    }
    refused = http.post(
        "/v1/chat/completions", json={"model": "alpha", "messages": ASK, "response_format": broken}
    )
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "response_format", refused.text


def test_an_adapter_registered_through_one_router_is_served_through_the_other(cluster: Cluster) -> None:
    cluster.a.admin.post("/v1/adapters", json={"name": "delta", "path": "delta"}).raise_for_status()
    # A request naming it is served at once (the router reads an adapter it does not know yet); listings
    # follow within the sync period.
    reply = cluster.b.client.chat.completions.create(model="delta", messages=ASK, max_tokens=4, temperature=0)
    assert reply.model == "delta" and reply.choices[0].message.content
    assert "delta" in [m.id for m in cluster.b.client.models.list().data]
    cluster.b.admin.delete("/v1/adapters/delta").raise_for_status()

    def refused_by_a() -> bool:
        try:
            cluster.a.client.chat.completions.create(model="delta", messages=ASK, max_tokens=1)
        except openai.NotFoundError:
            return True
        return False

    # Each router answers from its snapshot of the registry, re-read every SYNC_S.
    assert wait_for(refused_by_a, within_s=4 * SYNC_S + 2)
    assert "delta" not in [m.id for m in cluster.a.client.models.list().data]


def test_a_blocked_registry_does_not_hold_up_requests_for_known_adapters(cluster: Cluster) -> None:
    """Another session holds the adapters table locked (every read of it waits): chat for known adapters,
    the base model and `auto` is answered meanwhile, from the routers' snapshots of the registry."""
    with psycopg.connect(cluster.database_url) as blocker:
        blocker.execute("LOCK TABLE adapters IN ACCESS EXCLUSIVE MODE")
        for router in (cluster.a, cluster.b):
            for model in ("alpha", "beta", DEFAULT_BASE_MODEL, "auto"):
                reply = router.client.with_options(timeout=60).chat.completions.create(
                    model=model, messages=ASK, max_tokens=2, temperature=0
                )
                assert reply.choices[0].message.content is not None
        # Answered before the lock goes: a request that read the table would still be waiting (and time out).
        blocker.rollback()
    # The lock gone, registrations go through again.
    cluster.a.admin.post("/v1/adapters", json={"name": "epsilon", "path": "delta"}).raise_for_status()
    cluster.a.admin.delete("/v1/adapters/epsilon").raise_for_status()


def test_a_router_retrained_through_one_router_routes_the_same_through_the_other(cluster: Cluster) -> None:
    a, b = cluster.a.admin, cluster.b.admin
    # B started without a router of its own: it got the one A shared.
    assert b.get("/v1/router").json()["version"] == a.get("/v1/router").json()["version"] is not None
    weather = [
        "What's the weather like in Paris tomorrow?",
        "Will it rain in Berlin this weekend?",
        "How hot will it be in Madrid on Friday?",
        "Is it going to snow in Oslo tonight?",
        "Forecast for London next week please",
        "Do I need an umbrella in Seattle today?",
        "How windy is it in Chicago right now?",
        "What's the temperature in Tokyo this morning?",
    ]
    examples = [{"text": text, "label": "beta"} for text in weather]
    trained = b.post("/v1/router/train", json={"examples": examples}, timeout=600).raise_for_status().json()
    assert "beta" in trained["labels"]
    started = time.monotonic()
    while a.get("/v1/router").json()["version"] != trained["version"]:
        assert time.monotonic() - started < 10 * SYNC_S + 5, "router A did not pick up B's router"
        time.sleep(0.1)
    print(f"router A followed B's new router after {time.monotonic() - started:.1f} s")
    probes = ["Will it be sunny in Rome on Sunday?", "SELECT the ten largest orders", "What is 17 times 3?"]
    for text in probes:
        via_a = a.post("/v1/route", json={"text": text}).raise_for_status().json()
        via_b = b.post("/v1/route", json={"text": text}).raise_for_status().json()
        assert via_a["router_version"] == via_b["router_version"] == trained["version"]
        assert (via_a["model"], via_a["label"]) == (via_b["model"], via_b["label"])
        assert via_a["scores"] == pytest.approx(via_b["scores"], abs=1e-5)
    # The new label is what both now answer for a weather question.
    assert a.post("/v1/route", json={"text": probes[0]}).json()["label"] == "beta"


def test_compositions_are_served_by_the_replicas_from_the_shared_folder(cluster: Cluster) -> None:
    """A composition is written once under the shared adapter root and the replicas load it from there, like
    any adapter: one part at weight 1 answers as that part, and both routers serve the same composite."""
    prompts = ["Name a color.", "Count to three.", "Say hello in French."]

    def greedy(router: Router, model: str, prompt: str) -> str:
        # One request at a time: the CPU engine's rounding depends on the batch a sequence decodes in.
        reply = router.client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}], max_tokens=12, temperature=0
        )
        return reply.choices[0].message.content or ""

    for prompt in prompts:
        assert greedy(cluster.a, "alpha:1.0", prompt) == greedy(cluster.a, "alpha", prompt), prompt
    blend = "alpha:0.5+beta:0.5"
    streamed = cluster.a.client.chat.completions.create(
        model=blend,
        messages=[{"role": "user", "content": prompts[0]}],
        max_tokens=12,
        temperature=0,
        stream=True,
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)
    folder = cluster.adapter_root / COMPOSITIONS_FOLDER
    written = sorted(p.name for p in folder.iterdir())
    assert written
    assert text and text == greedy(cluster.b, blend, prompts[0])
    # Router B found the blend A wrote (the same parts and weights, the same content key).
    assert sorted(p.name for p in folder.iterdir()) == written


def test_killing_a_replica_fails_only_its_requests_and_its_adapters_move(cluster: Cluster) -> None:
    adapters = cluster.a.admin.get("/v1/adapters").raise_for_status().json()["data"]
    by_home: dict[str, list[str]] = {url: [] for url in cluster.urls}
    for adapter in adapters:
        by_home[preferred_replica(cluster, adapter)].append(adapter["name"])
    doomed, survivor = cluster.replicas[0], cluster.urls[1]
    victim, safe = by_home[doomed.url][0], by_home[survivor]

    streamed = threading.Event()
    outcome: dict[str, object] = {}

    def long_stream() -> None:
        stream = cluster.a.client.chat.completions.create(
            model=victim, messages=ASK, max_tokens=400, stream=True, extra_body={"ignore_eos": True}
        )
        try:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    streamed.set()
            outcome["victim"] = "finished"
        except openai.APIError as exc:
            outcome["victim"] = exc
        outcome["victim_ended"] = time.monotonic()

    def on_survivor(i: int) -> None:
        router = (cluster.a, cluster.b)[i % 2]
        try:
            reply = router.client.chat.completions.create(
                model=safe[i % len(safe)], messages=ASK, max_tokens=24, extra_body={"ignore_eos": True}
            )
            outcome[f"safe-{i}"] = reply.choices[0].finish_reason
        except openai.APIError as exc:
            outcome[f"safe-{i}"] = exc

    victim_thread = threading.Thread(target=long_stream)
    victim_thread.start()
    assert streamed.wait(120), "the stream on the doomed replica never started"
    others = [threading.Thread(target=on_survivor, args=(i,)) for i in range(4)]
    for thread in others:
        thread.start()
    time.sleep(1)
    killed = time.monotonic()
    doomed.kill()
    victim_thread.join(60)
    for thread in others:
        thread.join(300)

    assert isinstance(outcome["victim"], openai.APIError), outcome
    ended_after = outcome["victim_ended"] - killed  # type: ignore[operator]
    print(f"the stream on the killed replica ended {ended_after:.2f} s after the kill: {outcome['victim']}")
    assert ended_after < 5
    assert all(outcome[f"safe-{i}"] == "length" for i in range(4)), outcome
    # New requests for the dead replica's adapter go to the survivor, through either router.
    for router in (cluster.a, cluster.b):
        reply = router.client.chat.completions.create(model=victim, messages=ASK, max_tokens=4, temperature=0)
        assert reply.model == victim
        replicas = {r["url"]: r for r in router.engine()["replicas"]}
        assert not replicas[doomed.url]["healthy"] and replicas[survivor]["healthy"]
        assert replicas[survivor]["requests"].get(victim, 0) >= 1
    assert cluster.a.admin.get("/ready").status_code == 200


def test_a_replica_that_comes_back_is_refilled_on_first_use(cluster: Cluster) -> None:
    revived = cluster.replicas[0]
    revived.start(600)  # the same address: a restarted pod behind the same DNS name
    started = time.monotonic()
    while not all(r["healthy"] for router in (cluster.a, cluster.b) for r in router.engine()["replicas"]):
        assert time.monotonic() - started < 10, "the routers did not take the replica back"
        time.sleep(0.2)
    status = {r["url"]: r for r in cluster.a.engine()["replicas"]}[revived.url]
    assert status["recoveries"] == 1 and status["adapters_loaded"] == []
    # An adapter at home there goes back to it, and is loaded again on that first request.
    adapters = cluster.a.admin.get("/v1/adapters").raise_for_status().json()["data"]
    home = next(a["name"] for a in adapters if preferred_replica(cluster, a) == revived.url)
    reply = cluster.a.client.chat.completions.create(model=home, messages=ASK, max_tokens=4, temperature=0)
    assert reply.model == home
    after = {r["url"]: r for r in cluster.a.engine()["replicas"]}[revived.url]
    assert after["adapters_loaded"] == [home] and after["cold_loads"] == status["cold_loads"] + 1
