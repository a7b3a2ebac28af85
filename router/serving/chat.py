"""Chat completions: resolve the model, apply the adapter's defaults, generate, shape the OpenAI answer."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import replace
from typing import TypedDict, Unpack

from router.engine.base import CompletionDelta, GenerationStep
from router.errors import InvalidRequestError
from router.protocol import (
    ChatChoice,
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    DeltaFunction,
    DeltaMessage,
    DeltaToolCall,
    ResponseMessage,
    RoutingInfo,
    Usage,
)
from router.routing.resolver import ModelResolver, Target
from router.serving.generation import Collected, GenerationServing, Generator, ServingResult, usage
from router.serving.logprobs import chat_logprobs
from router.serving.prompts import PromptRenderer
from router.serving.sampling import ModelDefaults, structured_output
from router.serving.sse import sse_event
from router.serving.tools import ToolPlan, Tools
from router.settings import Settings


class _ChunkExtra(TypedDict, total=False):
    """What a chunk carries besides its choices: the routing on the first one, the usage on the last."""

    routing: RoutingInfo
    usage: Usage


class ChatServing(GenerationServing):
    def __init__(
        self,
        settings: Settings,
        resolver: ModelResolver,
        renderer: PromptRenderer,
        generator: Generator,
        model_defaults: ModelDefaults,
        tools: Tools,
    ) -> None:
        super().__init__(settings, resolver, renderer, generator, model_defaults)
        self._tools = tools

    async def create(self, request: ChatCompletionRequest) -> ServingResult:
        if len(request.messages) > self._settings.max_messages:
            raise InvalidRequestError(
                f"messages holds {len(request.messages)} messages; at most {self._settings.max_messages} "
                "are accepted",
                param="messages",
                code="too_many_messages",
            )
        if request.top_logprobs and not request.logprobs:
            raise InvalidRequestError("top_logprobs needs logprobs: true", param="top_logprobs")
        plan = self._tools.plan(request)
        self._generator.ensure_available()
        request_id = f"chatcmpl-{uuid.uuid4().hex}"
        target = await self._resolve(request.model, request.messages)
        defaults = target.adapter.defaults if target.adapter else None
        messages = self._renderer.with_defaults(request.messages, defaults)
        prompt_ids = await self._renderer.render_chat_off_loop(messages, plan.tools)
        structured = structured_output(request, defaults)
        if plan.structured is not None:
            if request.response_format is not None or request.structured_outputs is not None:
                raise InvalidRequestError(
                    "a forced tool_choice holds the answer to the tools' JSON already: leave out "
                    "response_format and structured_outputs",
                    param="tool_choice",
                )
            structured = plan.structured
        sampling = self._sampling(
            request,
            target,
            prompt_ids,
            requested_max_tokens=request.requested_max_tokens,
            prompt_param="messages",
            logprobs=request.logprobs_count,
            structured=structured,
        )
        sampling = replace(sampling, skip_special_tokens=plan.skip_special_tokens)
        if request.stream:
            steps = await self._generator.start(request_id, prompt_ids, sampling, target)
            if plan.reads_calls:
                # Calls are read from the whole answer, so it goes out as one piece at its end.
                steps = self._gathered(steps, sampling.n)
            stream = self._stream(request, request_id, target, len(prompt_ids), steps, plan)
            return ServingResult(target, request_id, stream=stream)
        collected = await self._generator.collect(request_id, prompt_ids, sampling, target)
        choices = [self._choice(collected, i, plan) for i in range(sampling.n)]
        response = ChatCompletionResponse(
            id=request_id,
            model=target.model_name,
            choices=choices,
            usage=usage(len(prompt_ids), collected.completion_tokens),
            routing=target.routing,
        )
        return ServingResult(target, request_id, response=response)

    def _choice(self, collected: Collected, i: int, plan: ToolPlan) -> ChatChoice:
        answer = self._tools.read(plan, collected.texts[i])
        logprobs = collected.logprobs[i]
        return ChatChoice(
            index=i,
            message=ResponseMessage(content=answer.content, tool_calls=answer.tool_calls or None),
            finish_reason="tool_calls" if answer.tool_calls else collected.finish_reasons[i],
            logprobs=None if logprobs is None else chat_logprobs(logprobs, self._renderer),
        )

    @staticmethod
    async def _gathered(
        steps: AsyncGenerator[GenerationStep, None], n: int
    ) -> AsyncGenerator[GenerationStep, None]:
        collected = Collected(n)
        async with aclosing(steps):
            async for step in steps:
                collected.add(step)
        # Only the total of tokens counts (for the usage event): it rides on the first completion.
        counts = [collected.completion_tokens] + [0] * (n - 1)
        yield GenerationStep(
            deltas=[
                CompletionDelta(i, text, counts[i], collected.finish_reasons[i], collected.logprobs[i])
                for i, text in enumerate(collected.texts)
            ],
            finished=True,
        )

    async def _stream(
        self,
        request: ChatCompletionRequest,
        request_id: str,
        target: Target,
        prompt_tokens: int,
        steps: AsyncGenerator[GenerationStep, None],
        plan: ToolPlan,
    ) -> AsyncIterator[str]:
        created = int(time.time())

        def chunk(choices: list[ChatChunkChoice], **extra: Unpack[_ChunkExtra]) -> ChatCompletionChunk:
            return ChatCompletionChunk(
                id=request_id, created=created, model=target.model_name, choices=choices, **extra
            )

        def choice(delta: CompletionDelta) -> ChatChunkChoice:
            logprobs = None if delta.logprobs is None else chat_logprobs(delta.logprobs, self._renderer)
            if not plan.reads_calls:
                message = DeltaMessage(content=delta.text or None)
                return ChatChunkChoice(
                    index=delta.index, delta=message, finish_reason=delta.finish_reason, logprobs=logprobs
                )
            answer = self._tools.read(plan, delta.text)
            calls = [
                DeltaToolCall(
                    index=k,
                    id=call.id,
                    type="function",
                    function=DeltaFunction(name=call.function.name, arguments=call.function.arguments),
                )
                for k, call in enumerate(answer.tool_calls)
            ]
            message = DeltaMessage(content=answer.content, tool_calls=calls or None)
            finish = "tool_calls" if calls else delta.finish_reason
            return ChatChunkChoice(index=delta.index, delta=message, finish_reason=finish, logprobs=logprobs)

        # The first chunk opens every choice with the assistant role and carries the routing explanation.
        opening = [
            ChatChunkChoice(index=i, delta=DeltaMessage(role="assistant", content=""))
            for i in range(request.n)
        ]
        yield sse_event(chunk(opening, routing=target.routing))
        async for event in self._sse(
            request,
            steps,
            prompt_tokens,
            event=lambda deltas: chunk([choice(d) for d in deltas]),
            usage_event=lambda used: chunk([], usage=used),
        ):
            yield event
