"""Tools on a base model whose chat template offers them: the real tokenizer renders them, the real vLLM
Hermes parser reads `auto` calls back, and forced choices hold the answer to JSON that xgrammar compiles.

The shipped base model's template cannot offer tools (tests/router/test_openai_fields.py checks the 400 on
the running service); this template is the Hermes/Qwen style many tool-calling models use, on the same
tokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import xgrammar
from transformers import AutoTokenizer

from router.engine.tool_parser import ToolCallParser
from router.errors import InvalidRequestError
from router.protocol import ChatCompletionRequest
from router.serving.prompts import PromptRenderer
from router.serving.tools import Tools

TOOLS_TEMPLATE = """
{%- if tools %}<|im_start|>system
You may call these tools:
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}
To call one, write <tool_call>{"name": <name>, "arguments": <arguments>}</tool_call><|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == "tool" %}<|im_start|>user
<tool_response>{{ message.content }}</tool_response><|im_end|>
{% elif message.tool_calls %}<|im_start|>assistant
{% for call in message.tool_calls -%}
<tool_call>{{ {"name": call.function.name, "arguments": call.function.arguments} | tojson }}</tool_call>
{%- endfor %}<|im_end|>
{% else %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {"type": "function", "function": {"name": "get_time"}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def renderer(base_model_dir: Path) -> PromptRenderer:
    tokenizer = AutoTokenizer.from_pretrained(str(base_model_dir))
    tokenizer.chat_template = TOOLS_TEMPLATE
    return PromptRenderer(tokenizer)


def request(**fields: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "m", "messages": ASK, "tools": [WEATHER, TIME], **fields}
    )


def test_the_shipped_template_cannot_offer_tools_and_this_one_can(
    renderer: PromptRenderer, base_model_dir: Path
) -> None:
    assert not PromptRenderer.from_model_dir(base_model_dir).renders_tools
    assert renderer.renders_tools
    prompt = renderer.tokenizer.decode(renderer.render_chat(ASK, [WEATHER]))
    assert '"name": "get_weather"' in prompt and prompt.endswith("<|im_start|>assistant\n")


def test_auto_calls_are_read_back_by_the_configured_vllm_parser(renderer: PromptRenderer) -> None:
    tools = Tools(renderer, ToolCallParser("hermes", renderer.tokenizer))
    plan = tools.plan(request(tool_choice="auto"))
    assert plan.mode == "auto" and plan.structured is None
    answer = tools.read(
        plan, 'Let me look.<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    )
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
    named = tools.plan(request(tool_choice={"type": "function", "function": {"name": "get_weather"}}))
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
    turns = request(
        messages=[
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
    )
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


def test_an_unknown_parser_name_lists_vllms(renderer: PromptRenderer) -> None:
    with pytest.raises(ValueError, match="hermes"):
        ToolCallParser("no-such-parser", renderer.tokenizer)
