"""Tools (function calling): offered to the model through the base model's chat template, read back out of
its answer as ``tool_calls``.

A chat template that ignores ``tools`` cannot offer any, so such requests get a ``400`` naming ``tools``
rather than an answer that silently never calls one. A forced choice (``required`` or a named function)
holds the answer to JSON of the tools' schemas, as vLLM's server does, and needs no parser; ``auto`` lets
the model write calls in its own syntax, which a vLLM tool parser (``LORA_ROUTER_TOOL_PARSER``) reads.
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from router.engine.base import StructuredOutput
from router.errors import InvalidRequestError
from router.protocol import ChatCompletionRequest, NamedToolChoice, ToolCall, ToolCallFunction

if TYPE_CHECKING:
    from router.engine.tool_parser import ToolCallParser
    from router.serving.prompts import PromptRenderer

EMPTY_OBJECT: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class ToolPlan:
    """What one request does with tools: what the template shows, how the answer is held and read."""

    mode: Literal["off", "none", "auto", "required", "named"] = "off"
    tools: list[dict[str, Any]] | None = None
    """As the chat template takes them (OpenAI's shape); None: no tools offered."""
    function: str | None = None
    structured: StructuredOutput | None = None
    skip_special_tokens: bool = True
    parallel: bool = True

    @property
    def reads_calls(self) -> bool:
        return self.mode in ("auto", "required", "named")


@dataclass
class Answer:
    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)


class Tools:
    def __init__(self, renderer: PromptRenderer, parser: ToolCallParser | None) -> None:
        self._renderer = renderer
        self._parser = parser

    def plan(self, request: ChatCompletionRequest) -> ToolPlan:
        """Raises a 400 naming the field when the model cannot do what the request asks."""
        choice = request.tool_choice
        if not request.tools:
            if choice not in (None, "none"):
                raise InvalidRequestError("tool_choice needs tools to choose from", param="tool_choice")
            self._check_tool_turns(request)
            return ToolPlan()
        if not self._renderer.renders_tools:
            raise InvalidRequestError(
                "this base model's chat template cannot offer tools to the model, so it would never call "
                "one: send the request without tools",
                param="tools",
                code="tools_not_supported",
            )
        tools = [tool.model_dump(exclude_none=True) for tool in request.tools]
        parallel = request.parallel_tool_calls is not False
        if isinstance(choice, NamedToolChoice):
            by_name = {tool.function.name: tool for tool in request.tools}
            if choice.function.name not in by_name:
                raise InvalidRequestError(
                    f"tool_choice names {choice.function.name!r}, which is not among the tools",
                    param="tool_choice",
                )
            schema = by_name[choice.function.name].function.parameters or EMPTY_OBJECT
            return ToolPlan(
                "named",
                tools,
                choice.function.name,
                StructuredOutput("json", json_schema=schema, source="tools"),
            )
        if choice == "required":
            schema = _calls_schema(tools, parallel)
            return ToolPlan(
                "required",
                tools,
                structured=StructuredOutput("json", json_schema=schema, source="tools"),
                parallel=parallel,
            )
        if choice == "none":
            return ToolPlan("none", tools)
        if self._parser is None:
            raise InvalidRequestError(
                'tool_choice "auto" needs a tool parser for this model\'s call syntax, and the service has '
                'none (LORA_ROUTER_TOOL_PARSER); "required" or a named function work without one',
                param="tools",
                code="tools_not_supported",
            )
        return ToolPlan(
            "auto", tools, skip_special_tokens=not self._parser.keeps_special_tokens(tools), parallel=parallel
        )

    def read(self, plan: ToolPlan, text: str) -> Answer:
        """The answer's content and the calls it makes. An answer cut short (max_tokens) before its calls
        are whole JSON keeps its text as content and calls nothing."""
        if plan.mode == "named":
            try:
                json.loads(text)
            except json.JSONDecodeError:
                return Answer(text)
            return Answer(None, [_call(plan.function or "", text.strip())])
        if plan.mode == "required":
            try:
                calls = [
                    (c["name"], json.dumps(c["parameters"], ensure_ascii=False)) for c in json.loads(text)
                ]
            except (json.JSONDecodeError, TypeError, KeyError):
                return Answer(text)
            return Answer(None, [_call(name, arguments) for name, arguments in calls])
        if plan.mode == "auto":
            assert self._parser is not None
            content, calls = self._parser.parse(text, plan.tools or [])
            if not plan.parallel:
                calls = calls[:1]
            return Answer(content, [_call(name, arguments) for name, arguments in calls])
        return Answer(text)

    def _check_tool_turns(self, request: ChatCompletionRequest) -> None:
        for i, message in enumerate(request.messages):
            if (message.role == "tool" or message.tool_calls) and not self._renderer.renders_tools:
                raise InvalidRequestError(
                    "this base model's chat template cannot show tool calls or tool results to the model",
                    param=f"messages.{i}",
                    code="tools_not_supported",
                )


def _call(name: str, arguments: str) -> ToolCall:
    return ToolCall(
        id=f"call_{uuid.uuid4().hex[:24]}",
        type="function",
        function=ToolCallFunction(name=name, arguments=arguments),
    )


def _calls_schema(tools: list[dict[str, Any]], parallel: bool) -> dict[str, Any]:
    """JSON of one or more calls, ``[{"name": ..., "parameters": {...}}]``, as vLLM's server asks for it."""
    definitions: dict[str, Any] = {}
    options = []
    for tool in tools:
        function = tool["function"]
        parameters = copy.deepcopy(function.get("parameters") or EMPTY_OBJECT)
        # References point at the top of the schema, so the tools' definitions go there.
        definitions |= parameters.pop("$defs", {})
        options.append(
            {
                "properties": {
                    "name": {"type": "string", "enum": [function["name"]]},
                    "parameters": parameters,
                },
                "required": ["name", "parameters"],
            }
        )
    schema: dict[str, Any] = {"type": "array", "minItems": 1, "items": {"type": "object", "anyOf": options}}
    if not parallel:
        schema["maxItems"] = 1
    if definitions:
        schema["$defs"] = definitions
    return schema
