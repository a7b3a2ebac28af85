"""Tools, both ways. SmolLM2-135M-Instruct's own chat template cannot show tools, so on the default setup
(`make serve`'s) every request with tools is a 400 naming `tools`. The shared test service runs a template
that can (tools_template.jinja: the model's own plus a Hermes-style tools block, with the Hermes parser),
and there tool calls round-trip through the real service: rendered, forced or parsed back, answered.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import jsonschema
import openai
import pytest
import xgrammar
from transformers import AutoTokenizer

from commands.process import ServiceProcess
from router.engine.tool_parser import ToolCallParser
from router.errors import InvalidRequestError
from router.protocol import ChatCompletionRequest
from router.serving.prompts import PromptRenderer
from router.serving.tools import Tools
from router.settings import DEFAULT_BASE_MODEL
from tests.conftest import TOOLS_TEMPLATE
from tests.router.service_checks import assert_error

BASE = DEFAULT_BASE_MODEL
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 20}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time"}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
CALLED = [
    *ASK,
    {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "sunny, 21 C"},
]
FORCED = {"type": "function", "function": {"name": "get_weather"}}


@pytest.fixture(scope="module")
def renderer(base_model_dir: Path) -> PromptRenderer:
    return PromptRenderer.from_model_dir(base_model_dir, TOOLS_TEMPLATE)


def request(**fields: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "m", "messages": ASK, "tools": [WEATHER, TIME], **fields}
    )


# --- the pieces, on the real tokenizer and vLLM's real parser ---------------------------------------


def test_the_tools_template_renders_tool_less_chats_as_the_models_own(
    renderer: PromptRenderer, base_model_dir: Path
) -> None:
    own = PromptRenderer.from_model_dir(base_model_dir)
    assert not own.renders_tools and renderer.renders_tools
    chats = [
        ASK,
        [{"role": "system", "content": "Be brief."}, *ASK, {"role": "assistant", "content": "Sunny."}],
    ]
    for chat in chats:
        assert renderer.render_chat(chat) == own.render_chat(chat)
    prompt = renderer.tokenizer.decode(renderer.render_chat(ASK, [WEATHER]))
    assert '"name": "get_weather"' in prompt and prompt.endswith("<|im_start|>assistant\n")


def test_auto_calls_are_read_back_by_the_configured_vllm_parser(renderer: PromptRenderer) -> None:
    tools = Tools(renderer, ToolCallParser("hermes", renderer.tokenizer))
    plan = tools.plan(request(tool_choice="auto"))
    assert plan.mode == "auto" and plan.structured is None
    said = 'Let me look.<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    answer = tools.read(plan, said)
    assert answer.content == "Let me look."
    (call,) = answer.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    assert call.id.startswith("call_")
    plain = tools.read(plan, "It is sunny.")
    assert (plain.content, plain.tool_calls) == ("It is sunny.", [])
    two = '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>' * 2
    assert len(tools.read(plan, two).tool_calls) == 2
    single = tools.plan(request(tool_choice="auto", parallel_tool_calls=False))
    assert len(tools.read(single, two).tool_calls) == 1


def test_forced_choices_hold_the_answer_to_json_the_engine_compiles(renderer: PromptRenderer) -> None:
    tools = Tools(renderer, None)  # forced choices need no parser
    named = tools.plan(request(tool_choice=FORCED))
    assert named.structured is not None and named.structured.source == "tools"
    assert named.structured.json_schema == WEATHER["function"]["parameters"]
    (call,) = tools.read(named, '{"city": "Paris"}').tool_calls
    assert (call.function.name, call.function.arguments) == ("get_weather", '{"city": "Paris"}')
    assert tools.read(named, '{"city": "Par').tool_calls == []  # cut short by max_tokens: no call
    required = tools.plan(request(tool_choice="required", parallel_tool_calls=False))
    schema = required.structured.json_schema
    assert schema["maxItems"] == 1
    xgrammar.Grammar.from_json_schema(json.dumps(schema))
    calls = tools.read(required, '[{"name": "get_time", "parameters": {}}]').tool_calls
    assert [(c.function.name, c.function.arguments) for c in calls] == [("get_time", "{}")]
    assert tools.plan(request(tool_choice="none")).reads_calls is False


def test_tool_turns_reach_the_template(renderer: PromptRenderer) -> None:
    turns = request(messages=CALLED)
    prompt = renderer.tokenizer.decode(renderer.render_chat(renderer.with_defaults(turns.messages, None)))
    assert '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>' in prompt
    assert "<tool_response>sunny, 21 C</tool_response>" in prompt


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tool_choice": "auto"}, "tools"),  # no parser configured
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tools": None, "tool_choice": "required"}, "tool_choice"),
    ],
)
def test_what_cannot_be_done_is_400_naming_the_field(
    renderer: PromptRenderer, fields: dict, param: str
) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        Tools(renderer, None).plan(request(**fields))
    assert refused.value.param == param


def test_an_unknown_parser_name_lists_vllms(base_model_dir: Path) -> None:
    with pytest.raises(ValueError, match="hermes"):
        ToolCallParser("no-such-parser", AutoTokenizer.from_pretrained(str(base_model_dir)))


# --- through the running services -----------------------------------------------------------------


def test_a_forced_call_round_trips_through_the_service(client: openai.OpenAI) -> None:
    ask = {"model": BASE, "tools": [WEATHER, TIME], "temperature": 0, "max_tokens": 32}
    reply = client.chat.completions.create(**ask, messages=ASK, tool_choice=FORCED).choices[0]
    assert reply.finish_reason == "tool_calls" and reply.message.content is None
    (call,) = reply.message.tool_calls
    assert call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])
    # Streamed, the calls come whole in one chunk at the end, the same as unstreamed.
    chunks = list(client.chat.completions.create(**ask, messages=ASK, tool_choice=FORCED, stream=True))
    streamed = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert [(d.function.name, d.function.arguments) for d in streamed] == [
        ("get_weather", call.function.arguments)
    ]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    # `required`: one or more calls to any of the tools.
    required = client.chat.completions.create(**ask, messages=ASK, tool_choice="required").choices[0]
    assert required.message.tool_calls and {c.function.name for c in required.message.tool_calls} <= {
        "get_weather",
        "get_time",
    }
    # The call and its result go back; the model answers in words.
    after = client.chat.completions.create(**{**ask, "max_tokens": 16}, messages=CALLED).choices[0]
    assert after.message.content and not after.message.tool_calls
    # `auto`: the model may or may not call; the Hermes parser reads what it wrote either way.
    auto = client.chat.completions.create(**ask, messages=ASK, tool_choice="auto").choices[0]
    assert auto.message.content or auto.message.tool_calls


def test_tools_are_400_naming_tools_where_the_template_cannot_show_them(open_service: ServiceProcess) -> None:
    # The default setup: SmolLM2-135M-Instruct's own template renders the messages only.
    with httpx.Client(base_url=open_service.url, timeout=60) as http:
        base = {"model": BASE, "messages": ASK, "max_tokens": 2}
        for choice in (None, "auto", "required", "none", FORCED):
            body = {**base, "tools": [WEATHER], **({"tool_choice": choice} if choice else {})}
            error = assert_error(http.post("/v1/chat/completions", json=body), 400, "tools_not_supported")
            assert error["param"] == "tools" and "tools" in error["message"]
        error = assert_error(http.post("/v1/chat/completions", json={**base, "messages": CALLED}), 400)
        assert error["param"] == "messages.1"
        assert_error(
            http.post("/v1/chat/completions", json={**base, "tool_choice": "auto"}), 400, param="tool_choice"
        )
