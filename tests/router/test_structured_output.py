"""Structured output on the real engine: `response_format` (json_object, json_schema strict or not) and vLLM's
`structured_outputs` (choice, regex), from requests and from an adapter's defaults; what the engine cannot
compile is a 400 naming the field."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import jsonschema
import openai
import pytest

from experts.tasks.extract import json_schema as extract_schema
from router.settings import DEFAULT_BASE_MODEL
from tests.router.service_checks import assert_error

BASE = DEFAULT_BASE_MODEL
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
ASK = [{"role": "user", "content": "Invent a person. Answer in JSON with their name and age."}]
EXTRACT = [
    {
        "role": "user",
        "content": "Extract as JSON: Book a table for 4 at Luigi's on May 3 at 7 pm, name Anna Berg.",
    }
]


def as_schema(strict: bool | None) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": strict}}


@pytest.mark.parametrize("model", [BASE, "extract"])
def test_json_object_and_json_schema_answers_parse_and_validate(
    async_client: openai.AsyncOpenAI, model: str
) -> None:
    formats = [{"type": "json_object"}, as_schema(True), as_schema(False), as_schema(None)]

    async def ask(response_format: dict) -> str:
        reply = await async_client.chat.completions.create(
            model=model, messages=ASK, temperature=0, max_tokens=48, response_format=response_format
        )
        return reply.choices[0].message.content

    async def all_of_them() -> list[str]:
        return await asyncio.gather(*(ask(f) for f in formats))

    json_object, *schema_answers = asyncio.run(all_of_them())
    assert isinstance(json.loads(json_object), dict)
    for answer in schema_answers:
        jsonschema.validate(json.loads(answer), PERSON)


def test_choice_and_regex_hold_the_answer(client: openai.OpenAI) -> None:
    question = [{"role": "user", "content": "Is Paris in France? Answer yes or no."}]
    chosen = client.chat.completions.create(
        model=BASE,
        messages=question,
        temperature=0,
        max_tokens=4,
        extra_body={"structured_outputs": {"choice": ["yes", "no"]}},
    )
    assert chosen.choices[0].message.content in ("yes", "no")
    dated = client.completions.create(
        model=BASE,
        prompt="The first moon landing happened on",
        temperature=0,
        max_tokens=16,
        extra_body={"structured_outputs": {"regex": r" [0-9]{4}-[0-9]{2}-[0-9]{2}"}},
    )
    assert re.fullmatch(r" [0-9]{4}-[0-9]{2}-[0-9]{2}", dated.choices[0].text)


def test_the_constraint_holds_the_stream_too(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=BASE, messages=ASK, temperature=0, max_tokens=48, response_format=as_schema(True), stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    jsonschema.validate(json.loads(text), PERSON)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("constraint", "param"),
    [
        # A reference to nothing: no backend can compile it.
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "broken",
                        "schema": {"type": "object", "properties": {"a": {"$ref": "#/$defs/nowhere"}}},
                    },
                }
            },
            "response_format",
        ),
        # A reference to nowhere that xgrammar refuses up front and llguidance only when it compiles it.
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "broken", "schema": {"properties": {"a": {"$ref": "#/x"}}}},
                }
            },
            "response_format",
        ),
        ({"structured_outputs": {"regex": "(unclosed"}}, "structured_outputs"),
    ],
)
def test_a_constraint_the_engine_cannot_compile_is_400_naming_it(
    http: httpx.Client, constraint: dict, param: str, stream: bool
) -> None:
    body = {"model": BASE, "messages": ASK, "max_tokens": 8, "stream": stream, **constraint}
    error = assert_error(http.post("/v1/chat/completions", json=body), 400, param=param)
    assert "engine refused" in error["message"]
    assert http.get("/health").json()["in_flight"] == 0


@pytest.mark.parametrize(
    "payload",
    [
        {"response_format": {"type": "json_schema", "json_schema": {"name": "no schema"}}},
        {"response_format": {"type": "xml"}},
        {"structured_outputs": {"choice": []}},
        {"structured_outputs": {"regex": "a", "choice": ["a"]}},
        {"structured_outputs": {"regex": "a"}, "response_format": {"type": "json_object"}},
    ],
)
def test_malformed_constraints_are_400(http: httpx.Client, payload: dict) -> None:
    error = assert_error(
        http.post("/v1/chat/completions", json={"model": BASE, "messages": ASK, **payload}), 400
    )
    assert error["param"].split(".")[0] in ("response_format", "structured_outputs")


def test_the_extract_expert_answers_with_its_schema_by_default(
    client: openai.OpenAI, http: httpx.Client
) -> None:
    shipped = next(a for a in http.get("/v1/adapters").json()["data"] if a["name"] == "extract")
    schema = shipped["defaults"]["response_format"]["json_schema"]["schema"]
    assert schema == extract_schema()  # the registry file says what the task's scorer expects
    reply = client.chat.completions.create(model="extract", messages=EXTRACT, temperature=0, max_tokens=96)
    answer = json.loads(reply.choices[0].message.content)
    jsonschema.validate(answer, schema)
    assert answer["kind"] == "booking" and answer["party_size"] == 4
    # A request's own constraint wins over the adapter's.
    free = client.chat.completions.create(
        model="extract",
        messages=EXTRACT,
        temperature=0,
        max_tokens=8,
        extra_body={"structured_outputs": {"choice": ["booking", "order", "contact"]}},
    )
    assert free.choices[0].message.content == "booking"
