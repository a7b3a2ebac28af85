"""Compositions named in ``model`` through the running service: the same greedy text as the adapter they
reduce to, batched with other adapters, dropped with a part, refused by name when they cannot be served."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import openai
import pytest

from router.settings import DEFAULT_BASE_MODEL
from tests.service_config import MAX_ADMITTED

PROMPTS = [
    "List the customers who ordered more than three times in May.",
    "What is 17 times 23?",
    "Extract the name and date: Anna Berg booked a table for May 3.",
    "Write a query for the ten most expensive products.",
    "How many orders were shipped late last week?",
    "Give the total revenue per country from the sales table.",
    "Pull out the phone number: call Omar on 555-0142 after six.",
    "Which employees joined after 2020?",
    "What is the average basket size on Sundays?",
    "Find every invoice over 1000 euros that is still unpaid.",
]


async def _answer(client: openai.AsyncOpenAI, model: str, prompt: str, *, stream: bool = False) -> str:
    messages = [{"role": "user", "content": prompt}]
    if not stream:
        reply = await client.chat.completions.create(
            model=model, messages=messages, temperature=0, max_tokens=16
        )
        return reply.choices[0].message.content or ""
    chunks = await client.chat.completions.create(
        model=model, messages=messages, temperature=0, max_tokens=16, stream=True
    )
    return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])


def test_a_one_part_or_zero_weighted_composition_answers_as_the_adapter_it_reduces_to(
    async_client: openai.AsyncOpenAI,
) -> None:
    pairs = {"sql:1.0": "sql", "sql:0+extract:1": "extract"}

    async def both() -> dict[str, list[str]]:
        models = [*pairs, *pairs.values()]
        # Below the service's admission limit (MAX_ADMITTED), in mixed batches all the same.
        slots = asyncio.Semaphore(MAX_ADMITTED // 2)

        async def one(model: str, prompt: str) -> str:
            async with slots:
                return await _answer(async_client, model, prompt)

        answers = await asyncio.gather(*(one(m, p) for m in models for p in PROMPTS))
        return {m: answers[i * len(PROMPTS) : (i + 1) * len(PROMPTS)] for i, m in enumerate(models)}

    answers = asyncio.run(both())
    for composition, adapter in pairs.items():
        assert answers[composition] == answers[adapter], composition
    assert answers["sql"] != answers["extract"]


def test_a_composition_streams_and_batches_with_other_adapters(
    client: openai.OpenAI, async_client: openai.AsyncOpenAI
) -> None:
    composition, prompt = "alpha:0.6+beta:0.4", PROMPTS[0]
    reply = client.chat.completions.with_raw_response.create(
        model=composition, messages=[{"role": "user", "content": prompt}], temperature=0, max_tokens=16
    )
    alone = reply.parse()
    assert alone.model == composition and reply.headers["x-lora-adapter"] == composition
    routing = alone.model_extra["routing"]
    assert routing["mode"] == "composed" and routing["composition"] == {"alpha": 0.6, "beta": 0.4}
    text = alone.choices[0].message.content

    async def mixed() -> list[str]:
        jobs = [
            _answer(async_client, composition, prompt, stream=True),
            _answer(async_client, "alpha", prompt),
            _answer(async_client, composition, prompt),
            _answer(async_client, "beta", prompt),
            _answer(async_client, DEFAULT_BASE_MODEL, prompt),
            _answer(async_client, "sql", prompt),
        ]
        return await asyncio.gather(*jobs)

    together = asyncio.run(mixed())
    assert together[0] == text and together[2] == text
    # A blend of two adapters is neither of them.
    assert text not in (together[1], together[3])


def test_unregistering_a_part_drops_its_compositions(
    client: openai.OpenAI, http: httpx.Client, service_data_dir: Path
) -> None:
    assert http.post("/v1/adapters", json={"name": "part", "path": "delta"}).status_code == 201
    made = service_data_dir / "adapters" / ".compositions"
    before = set(made.iterdir()) if made.is_dir() else set()
    message = [{"role": "user", "content": PROMPTS[1]}]
    reply = client.chat.completions.create(model="part:0.5+alpha:0.5", messages=message, max_tokens=4)
    assert reply.model == "part:0.5+alpha:0.5"
    (folder,) = set(made.iterdir()) - before

    assert http.delete("/v1/adapters/part").status_code == 200
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="part:0.5+alpha:0.5", messages=message, max_tokens=4)
    assert refused.value.body["param"] == "model"
    assert "'part' is not a registered adapter" in str(refused.value)
    assert not folder.exists()
    assert client.chat.completions.create(model="alpha:1", messages=message, max_tokens=4).model == "alpha:1"


@pytest.mark.parametrize(
    ("model", "says"),
    [
        ("alpha+nope", "'nope' is not a registered adapter"),
        ("alpha:-0.5+beta:1", "at least 0"),
        ("alpha:nan+beta:1", "finite"),
        ("alpha:inf", "finite"),
        ("alpha+beta+gamma+sql+math", "1 to 4 are allowed"),
        ("sql+math+extract", "sql 16 + math 16 + extract 16 = 48"),
        ("alpha:1+beta", "weigh every part"),
        ("alpha+alpha", "more than once"),
    ],
)
def test_a_bad_composition_is_refused_by_name_and_changes_nothing(
    client: openai.OpenAI, http: httpx.Client, service_data_dir: Path, model: str, says: str
) -> None:
    made = service_data_dir / "adapters" / ".compositions"
    before = (http.get("/v1/adapters").json(), http.get("/v1/models").json(), sorted(made.glob("*")))
    for path in ("/v1/chat/completions", "/v1/completions"):
        body = {"model": model, "max_tokens": 4}
        body |= {"messages": [{"role": "user", "content": "hi"}]} if "chat" in path else {"prompt": "hi"}
        response = http.post(path, json=body)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert (error["param"], error["code"]) == ("model", "invalid_composition")
        assert says in error["message"]
    after = (http.get("/v1/adapters").json(), http.get("/v1/models").json(), sorted(made.glob("*")))
    assert after == before
    assert client.chat.completions.create(
        model="alpha", messages=[{"role": "user", "content": "hi"}], max_tokens=2
    ).choices


def test_a_registered_composition_has_a_name_defaults_and_parts_of_its_own(
    client: openai.OpenAI, http: httpx.Client
) -> None:
    compose = [{"adapter": "alpha", "weight": 0.6}, {"adapter": "beta", "weight": 0.4}]
    body = {"name": "alphabeta", "compose": compose, "defaults": {"max_tokens": 5}}
    created = http.post("/v1/adapters", json=body)
    assert created.status_code == 201, created.text
    spec = created.json()
    assert spec["composition"] == compose and spec["rank"] == 16 and ".compositions" in spec["path"]
    cards = {card.id: card for card in client.models.list().data}
    assert cards["alphabeta"].model_extra["composition"] == compose
    message = [{"role": "user", "content": PROMPTS[0]}]

    def text(model: str, **extra: int) -> tuple[str, int]:
        reply = client.chat.completions.create(model=model, messages=message, temperature=0, **extra)
        return reply.choices[0].message.content or "", reply.usage.completion_tokens

    assert text("alphabeta", max_tokens=16) == text("alpha:0.6+beta:0.4", max_tokens=16)
    assert text("alphabeta")[1] <= 5  # its own defaults, not alpha's
    assert http.delete("/v1/adapters/alphabeta").status_code == 200
    assert "alphabeta" not in {card.id for card in client.models.list().data}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"compose": [{"adapter": "alpha", "weight": 1}, {"adapter": "nope", "weight": 1}]}, "'nope' is not"),
        ({"compose": [{"adapter": "alpha", "weight": -1}]}, "at least 0"),
        (
            {"compose": [{"adapter": n, "weight": 1} for n in ("alpha", "beta", "gamma", "sql", "math")]},
            "1 to 4",
        ),
        ({"compose": []}, "1 to 4"),
        ({"compose": [{"adapter": n, "weight": 1} for n in ("sql", "math", "extract")]}, "= 48"),
        ({"compose": [{"adapter": "alpha", "weight": 1}], "path": "delta"}, "not both"),
        ({"compose": [{"adapter": "alpha", "weight": 0}]}, "every part 0"),
    ],
)
def test_a_bad_registered_composition_is_refused_by_name_and_changes_nothing(
    http: httpx.Client, service_data_dir: Path, body: dict, says: str
) -> None:
    made = service_data_dir / "adapters" / ".compositions"
    before = (http.get("/v1/adapters").json(), sorted(made.glob("*")))
    response = http.post("/v1/adapters", json={"name": "bad-blend", **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("compose", "invalid_composition")
    assert says in error["message"]
    assert (http.get("/v1/adapters").json(), sorted(made.glob("*"))) == before


def test_a_composition_of_a_composition_and_a_non_finite_weight_are_refused(http: httpx.Client) -> None:
    compose = [{"adapter": "alpha", "weight": 0.5}, {"adapter": "beta", "weight": 0.5}]
    assert http.post("/v1/adapters", json={"name": "inner", "compose": compose}).status_code == 201
    try:
        nested = {"name": "outer", "compose": [{"adapter": "inner", "weight": 1}]}
        refused = http.post("/v1/adapters", json=nested)
        assert refused.status_code == 400 and "is a composition itself" in refused.json()["error"]["message"]
        # JSON has no NaN, but Python's parser (and so the service's) reads the token.
        raw = '{"name": "nan-blend", "compose": [{"adapter": "alpha", "weight": NaN}]}'
        refused = http.post("/v1/adapters", content=raw, headers={"content-type": "application/json"})
        assert refused.status_code in (400, 422), refused.text
        assert "nan-blend" not in {a["name"] for a in http.get("/v1/adapters").json()["data"]}
    finally:
        http.delete("/v1/adapters/inner")
