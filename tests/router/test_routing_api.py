"""`model: "auto"` against the real service: the default router trained from the shipped intents, real
adapters named after its labels, decisions explained, and retraining while traffic flows."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from commands.process import ServiceProcess
from router.settings import DEFAULT_BASE_MODEL

BASE = DEFAULT_BASE_MODEL
SQL = "How many orders did each customer place last month? Give me the query."
SMALL_TALK = "Hi! How are you doing today?"
MATH = "What is 17 times 23?"
OFF_TOPIC = "Who won the football world cup in 1998?"
FOLLOW_UP = "can you make it shorter?"
LABELS = {"sql", "math", "extract", "chat"}


def ask(client: openai.OpenAI, text: str, model: str = "auto", **kw: object):  # -> raw response
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], temperature=0, max_tokens=8, **kw
    )


def test_auto_sends_sql_to_the_sql_adapter_and_explains(client: openai.OpenAI) -> None:
    raw = ask(client, SQL)
    reply = raw.parse()
    routing = reply.model_extra["routing"]
    assert reply.model == "sql"
    assert routing["mode"] == "auto" and routing["adapter"] == "sql" and routing["label"] == "sql"
    assert routing["fallback_reason"] is None
    assert set(routing["scores"]) == LABELS
    assert routing["confidence"] == max(routing["scores"].values())
    assert sum(routing["scores"].values()) == pytest.approx(1.0, abs=1e-3)
    assert raw.headers["x-router-adapter"] == "sql"
    assert raw.headers["x-lora-adapter"] == "sql"
    assert float(raw.headers["x-router-confidence"]) == pytest.approx(routing["confidence"], abs=1e-4)
    assert raw.headers["x-router-fallback"] == "none"
    assert float(raw.headers["x-router-latency-ms"]) > 0
    assert raw.headers["x-router-version"] == routing["router_version"]


def test_auto_sends_small_talk_to_the_base_model(client: openai.OpenAI) -> None:
    raw = ask(client, SMALL_TALK)
    reply = raw.parse()
    routing = reply.model_extra["routing"]
    assert reply.model == BASE
    assert routing["label"] == "chat" and routing["adapter"] is None and routing["fallback_reason"] is None
    assert raw.headers["x-router-adapter"] == "none"
    assert raw.headers["x-lora-adapter"] == "none"


def test_routed_answer_equals_the_pinned_adapters_answer(client: openai.OpenAI) -> None:
    routed = ask(client, SQL).parse()
    pinned = ask(client, SQL, model="sql").parse()
    assert routed.choices[0].message.content == pinned.choices[0].message.content


def test_explicit_adapter_bypasses_the_classifier(client: openai.OpenAI) -> None:
    raw = ask(client, SMALL_TALK, model="sql")
    routing = raw.parse().model_extra["routing"]
    assert routing["mode"] == "pinned" and routing["adapter"] == "sql"
    assert routing["scores"] is None and routing["router_version"] is None
    assert "x-router-confidence" not in raw.headers


def test_first_stream_chunk_carries_the_decision(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": SQL}], stream=True, max_tokens=4
    )
    first = next(iter(stream))
    assert first.model_extra["routing"]["adapter"] == "sql"
    assert first.model == "sql"


def test_route_endpoint_decides_without_generating(http: httpx.Client) -> None:
    decision = http.post("/v1/route", json={"text": SQL}).json()
    assert decision["adapter"] == "sql" and set(decision["scores"]) == LABELS
    by_messages = http.post(
        "/v1/route",
        json={
            "messages": [
                {"role": "user", "content": SMALL_TALK},
                {"role": "assistant", "content": "Fine!"},
                {"role": "user", "content": SQL},
            ]
        },
    ).json()
    assert by_messages["label"] == "sql"  # the last user turn is what is classified
    bad = http.post("/v1/route", json={"text": SQL, "messages": [{"role": "user", "content": "x"}]})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"


def test_router_info_names_labels_and_where_they_go(http: httpx.Client) -> None:
    info = http.get("/v1/router").json()
    assert set(info["labels"]) == LABELS
    assert info["route_map"] == {"sql": "sql", "math": "math", "extract": "extract", "chat": BASE}
    assert info["version"] and info["training"] is False
    examples = http.get("/v1/router/examples").json()
    assert examples["version"] == info["version"]
    assert {e["label"] for e in examples["data"]} == LABELS


def test_router_info_shows_the_decision_rule(http: httpx.Client) -> None:
    info = http.get("/v1/router").json()
    assert info["out_of_scope"] is True and 0 < info["oos_threshold"] < 1
    assert (info["threshold"], info["min_margin"]) == (0.4, 0.1)
    assert info["sticky_margin"] > 0 and info["sticky_turns"] >= 3
    assert info["calibration_temperature"] > 0


def test_evaluation_scores_the_classifier_and_the_live_policy(http: httpx.Client) -> None:
    # One message of each kind besides the held-out set: a sub-intent-free label the router knows, and a
    # label no adapter answers (nothing can route it right, whatever the classifier says).
    extra = [{"text": "what is 12 times 12", "label": "math"}, {"text": "paint me a cat", "label": "art"}]
    evaluation = http.post("/v1/router/evaluate", json={"examples": extra}).json()
    assert evaluation["count"] > len(extra) and evaluation["accuracy"] > 0.9
    policy = evaluation["policy"]
    assert policy["threshold"] == 0.4 and 0 <= policy["fallback_rate"] < 0.2
    assert policy["accuracy_with_fallback"] <= 1 - 1 / evaluation["count"]  # the "art" message
    assert sum(policy["fallback_reasons"].values()) == round(policy["fallback_rate"] * evaluation["count"])


def test_out_of_scope_message_falls_back_to_the_base_model(http: httpx.Client, client: openai.OpenAI) -> None:
    decision = http.post("/v1/route", json={"text": OFF_TOPIC}).json()
    assert decision["fallback_reason"] == "out_of_scope", decision
    assert decision["model"] == BASE and decision["adapter"] is None
    assert decision["similarity"] < http.get("/v1/router").json()["oos_threshold"]
    raw = ask(client, OFF_TOPIC)
    assert raw.headers["x-router-fallback"] == "out_of_scope" and raw.parse().model == BASE


def conversation(*user_turns: str) -> list[dict[str, str]]:
    messages = []
    for text in user_turns:
        messages += [{"role": "user", "content": text}, {"role": "assistant", "content": "Done."}]
    return messages[:-1]


def test_a_conversation_keeps_its_expert_for_a_vague_follow_up(http: httpx.Client) -> None:
    alone = http.post("/v1/route", json={"text": FOLLOW_UP}).json()
    assert alone["adapter"] != "sql"  # on its own the follow-up is nobody's
    held = http.post("/v1/route", json={"messages": conversation(SQL, "and only for last month?", FOLLOW_UP)})
    decision = held.json()
    assert (decision["adapter"], decision["sticky"]) == ("sql", True), decision
    assert "kept 'sql'" in decision["detail"]


def test_a_conversation_switches_when_a_turn_is_clearly_another_experts(
    http: httpx.Client, client: openai.OpenAI
) -> None:
    decision = http.post("/v1/route", json={"messages": conversation(SQL, FOLLOW_UP, MATH)}).json()
    assert (decision["adapter"], decision["sticky"]) == ("math", None), decision
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=conversation(SQL, FOLLOW_UP), temperature=0, max_tokens=2
    )
    assert raw.headers["x-router-sticky"] == "true" and raw.parse().model == "sql"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"mode": "replace", "examples": [{"text": "select 1", "label": "sql"}] * 3}, "labels"),
        ({"examples": [{"text": "   ", "label": "sql"}]}, "examples"),
        (
            {"examples": [{"text": f"write me a haiku about {t}", "label": "haiku"} for t in "abcdefgh"]},
            "examples",
        ),
        ({"examples": [{"text": "x" * 3000, "label": "sql"}]}, "examples"),
        ({"examples": [{"text": "hi", "label": "bad label!"}]}, "examples"),
    ],
)
def test_bad_training_data_is_422_and_the_old_router_stays(
    http: httpx.Client, body: dict, param: str
) -> None:
    before = http.get("/v1/router").json()["version"]
    response = http.post("/v1/router/train", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["param"].startswith(param), error
    assert error["message"]
    assert http.get("/v1/router").json()["version"] == before
    assert http.post("/v1/route", json={"text": SQL}).json()["router_version"] == before


def test_retraining_while_requests_stream(
    service: ServiceProcess, http: httpx.Client, client: openai.OpenAI, service_data_dir: Path
) -> None:
    """A new label (with its adapter and example utterances) becomes routable without a restart; traffic
    during the retrain never fails and is always routed by one whole router, old or new."""
    shutil.copytree(
        service_data_dir / "adapters" / "delta", service_data_dir / "adapters" / "poem", dirs_exist_ok=True
    )
    poems = [
        "Write a short poem about the sea",
        "Compose a haiku about autumn leaves",
        "I need a rhyming verse for my mum's birthday card",
        "Give me a limerick about a cat",
        "Write a sonnet about the moon",
        "Pen a few lines of poetry about rain",
        "Make up a little rhyme about coffee",
        "A poem about mountains, please",
        "Write some verses about friendship",
        "Could you rhyme a couple of lines about my dog?",
        "compose an ode to summer",
        "a short poem for my grandmother's 90th birthday",
        "Write a free-verse poem about city lights",
        "I'd love a funny rhyme about Monday mornings",
        "Poem about the ocean at night, four stanzas",
        "Write me a love poem",
    ]
    created = http.post("/v1/adapters", json={"name": "poem", "path": "poem", "examples": poems})
    assert created.status_code == 201, created.text
    old = http.get("/v1/router").json()

    results: list[tuple[str, str | None, set[str]]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def traffic() -> None:
        texts = [SQL, SMALL_TALK, "What is 17 times 23?"]
        i = 0
        while not stop.is_set():
            try:
                chunks = list(
                    client.chat.completions.create(
                        model="auto",
                        messages=[{"role": "user", "content": texts[i % 3]}],
                        stream=True,
                        max_tokens=6,
                    )
                )
                routing = chunks[0].model_extra["routing"]
                results.append((routing["router_version"], routing["label"], set(routing["scores"])))
            except BaseException as exc:  # noqa: BLE001 - every failure counts
                errors.append(exc)
            i += 1

    workers = [threading.Thread(target=traffic) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        started = time.monotonic()
        train = http.post("/v1/router/train", json={}, timeout=900)
        trained_in = time.monotonic() - started
        deadline = time.monotonic() + 120  # some traffic on the new router too
        while time.monotonic() < deadline and not any(
            v == train.json().get("version") for v, _, _ in results
        ):
            time.sleep(0.2)
    finally:
        stop.set()
        for w in workers:
            w.join()

    assert train.status_code == 200, train.text
    new = train.json()
    assert new["version"] != old["version"]
    assert set(new["labels"]) == LABELS | {"poem"}
    assert not errors, errors[:3]
    assert len(results) >= 4, f"only {len(results)} requests in {trained_in:.0f}s of training"
    labels_of = {old["version"]: set(old["labels"]), new["version"]: set(new["labels"])}
    for version, _, score_labels in results:
        assert version in labels_of
        assert score_labels == labels_of[version]  # never a mix of two routers
    assert {v for v, _, _ in results} == set(labels_of)  # traffic was served by both, old then new

    reply = client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": poems[0]}],
        max_tokens=4,
    )
    routing = reply.model_extra["routing"]
    assert (reply.model, routing["label"]) == ("poem", "poem"), (
        routing["fallback_reason"],
        routing["detail"],
    )
    assert routing["router_version"] == new["version"]


def test_second_concurrent_training_gets_409(http: httpx.Client, service: ServiceProcess) -> None:
    before = http.get("/v1/router").json()
    outcome: dict[str, httpx.Response] = {}

    def first() -> None:
        outcome["first"] = http.post("/v1/router/train", json={}, timeout=600)

    thread = threading.Thread(target=first)
    thread.start()
    deadline = time.monotonic() + 10
    while not http.get("/v1/router").json()["training"] and time.monotonic() < deadline:
        time.sleep(0.05)
    second = http.post("/v1/router/train", json={})
    thread.join()
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "router_training_in_progress"
    assert outcome["first"].status_code == 200
    assert outcome["first"].json()["labels"] == before["labels"]


def test_sub_intents_of_an_adapter_add_up_and_the_winner_is_named(
    http: httpx.Client, service_data_dir: Path
) -> None:
    """An adapter registered with examples under sub-intents is routed to by either, through a retrain."""
    shutil.copytree(
        service_data_dir / "adapters" / "delta", service_data_dir / "adapters" / "billing", dirs_exist_ok=True
    )
    before = http.get("/v1/router/examples").json()["data"]
    examples = {
        "refund": [
            "I want my money back for this order",
            "please refund the jacket I returned",
            "how long does a refund take to arrive?",
            "the refund for my cancelled order never came",
        ],
        "card-lost": [
            "I lost my credit card, please block it",
            "my card was stolen yesterday",
            "someone took my wallet with my bank card in it",
            "freeze my card, I can't find it",
        ],
    }
    created = http.post("/v1/adapters", json={"name": "billing", "path": "billing", "examples": examples})
    assert created.status_code == 201, created.text
    assert created.json()["examples"] == examples
    try:
        trained = http.post("/v1/router/train", json={}, timeout=300)
        assert trained.status_code == 200, trained.text
        info = trained.json()
        assert {"billing/refund", "billing/card-lost"} <= set(info["labels"])
        assert info["route_map"]["billing/refund"] == info["route_map"]["billing/card-lost"] == "billing"
        decision = http.post(
            "/v1/route", json={"text": "I never got my money back for the returned shoes"}
        ).json()
        assert (decision["adapter"], decision["label"]) == ("billing", "billing/refund"), decision
        scores, sums = decision["scores"], decision["adapter_scores"]
        assert sums["billing"] == pytest.approx(
            scores["billing/refund"] + scores["billing/card-lost"], abs=1e-6
        )
        assert decision["confidence"] == pytest.approx(sums["billing"], abs=1e-6)
        lost = http.post("/v1/route", json={"text": "my debit card is missing, can you cancel it?"}).json()
        assert (lost["adapter"], lost["label"]) == ("billing", "billing/card-lost"), lost
    finally:
        # The next tests expect the router without billing: unregister it and train on the examples before.
        assert http.delete("/v1/adapters/billing").status_code == 200
        restored = http.post("/v1/router/train", json={"mode": "replace", "examples": before}, timeout=300)
        assert restored.status_code == 200, restored.text
        assert not any(label.startswith("billing") for label in restored.json()["labels"])
