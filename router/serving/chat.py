"""Chat completions: resolve the model, apply the adapter's defaults, generate, shape the OpenAI answer."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

from router.engine.base import SamplingOptions
from router.errors import InvalidRequestError
from router.protocol import (
    ChatChoice,
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    DeltaMessage,
    ResponseMessage,
)
from router.serving.generation import GenerationServing, ServingResult, usage
from router.serving.sse import sse_event
from router.serving.targets import Target


class ChatServing(GenerationServing):
    async def create(self, request: ChatCompletionRequest) -> ServingResult:
        if len(request.messages) > self._settings.max_messages:
            raise InvalidRequestError(
                f"messages holds {len(request.messages)} messages; at most {self._settings.max_messages} "
                "are accepted",
                param="messages",
                code="too_many_messages",
            )
        self._generator.ensure_available()
        request_id = f"chatcmpl-{uuid.uuid4().hex}"
        target = await self._resolve(request.model, request.messages)
        defaults = target.adapter.defaults if target.adapter else None
        prompt_ids = self._renderer.render_chat(self._renderer.with_defaults(request.messages, defaults))
        sampling = self._sampling(
            request,
            target,
            prompt_ids,
            requested_max_tokens=request.requested_max_tokens,
            prompt_param="messages",
        )
        if request.stream:
            stream = self._stream(request, request_id, target, prompt_ids, sampling)
            return ServingResult(target, request_id, stream=stream)
        collected = await self._generator.collect(request_id, prompt_ids, sampling, target)
        response = ChatCompletionResponse(
            id=request_id,
            model=target.model_name,
            choices=[
                ChatChoice(
                    index=i, message=ResponseMessage(content=text), finish_reason=collected.finish_reasons[i]
                )
                for i, text in enumerate(collected.texts)
            ],
            usage=usage(len(prompt_ids), collected.completion_tokens),
            routing=target.routing,
        )
        return ServingResult(target, request_id, response=response)

    async def _stream(
        self,
        request: ChatCompletionRequest,
        request_id: str,
        target: Target,
        prompt_ids: list[int],
        sampling: SamplingOptions,
    ) -> AsyncIterator[str]:
        created = int(time.time())

        # The first chunk opens every choice with the assistant role and carries the routing explanation.
        opening = [
            ChatChunkChoice(index=i, delta=DeltaMessage(role="assistant", content=""))
            for i in range(sampling.n)
        ]
        yield sse_event(
            ChatCompletionChunk(
                id=request_id,
                created=created,
                model=target.model_name,
                choices=opening,
                routing=target.routing,
            )
        )
        async for event in self._sse(
            request,
            request_id,
            target,
            prompt_ids,
            sampling,
            event=lambda deltas: ChatCompletionChunk(
                id=request_id,
                created=created,
                model=target.model_name,
                choices=[
                    ChatChunkChoice(
                        index=d.index,
                        delta=DeltaMessage(content=d.text or None),
                        finish_reason=d.finish_reason,
                    )
                    for d in deltas
                ],
            ),
            usage_event=lambda used: ChatCompletionChunk(
                id=request_id, created=created, model=target.model_name, choices=[], usage=used
            ),
        ):
            yield event
