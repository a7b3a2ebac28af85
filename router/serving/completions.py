"""Text completions (``/v1/completions``): raw prompts, no chat template; an adapter's stops still apply."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

from router.engine.base import SamplingOptions
from router.errors import InvalidRequestError, ServingError
from router.protocol import ChatMessage, CompletionChoice, CompletionRequest, CompletionResponse
from router.serving.generation import GenerationServing, ServingResult, usage
from router.serving.sse import SSE_DONE, sse_error, sse_event
from router.serving.targets import Target
from router.settings import AUTO_MODEL


class CompletionServing(GenerationServing):
    async def create(self, request: CompletionRequest) -> ServingResult:
        request_id = f"cmpl-{uuid.uuid4().hex}"
        if len(request.prompts) > 1 and (request.stream or request.model == AUTO_MODEL):
            raise InvalidRequestError(
                "streaming and `auto` routing take a single prompt; send one request per prompt",
                param="prompt",
            )
        target = await self._resolver.resolve(
            request.model, [ChatMessage(role="user", content=request.prompts[0])]
        )
        encoded = [self._renderer.encode(p) for p in request.prompts]
        if any(not ids for ids in encoded):
            raise InvalidRequestError("prompt must not be empty", param="prompt")
        samplings = [
            self._sampling(
                request, target, ids, requested_max_tokens=request.max_tokens, prompt_param="prompt"
            )
            for ids in encoded
        ]
        if request.stream:
            stream = self._stream(request, request_id, target, encoded[0], samplings[0])
            return ServingResult(target, request_id, stream=stream)
        results = await asyncio.gather(
            *(
                self._generator.collect(f"{request_id}-{i}", ids, sampling, target)
                for i, (ids, sampling) in enumerate(zip(encoded, samplings, strict=True))
            )
        )
        choices = [
            CompletionChoice(index=p * request.n + i, text=text, finish_reason=collected.finish_reasons[i])
            for p, collected in enumerate(results)
            for i, text in enumerate(collected.texts)
        ]
        prompt_tokens = sum(len(ids) for ids in encoded)
        response = CompletionResponse(
            id=request_id,
            model=target.model_name,
            choices=choices,
            usage=usage(prompt_tokens, sum(c.completion_tokens for c in results)),
            routing=target.routing,
        )
        return ServingResult(target, request_id, response=response)

    async def _stream(
        self,
        request: CompletionRequest,
        request_id: str,
        target: Target,
        prompt_ids: list[int],
        sampling: SamplingOptions,
    ) -> AsyncIterator[str]:
        created = int(time.time())
        completion_tokens = 0
        first = True
        try:
            async for step in self._generator.stream(request_id, prompt_ids, sampling, target):
                choices = []
                for delta in step.deltas:
                    completion_tokens += delta.num_tokens
                    if delta.text or delta.finish_reason:
                        choices.append(
                            CompletionChoice(
                                index=delta.index, text=delta.text, finish_reason=delta.finish_reason
                            )
                        )
                if choices:
                    yield sse_event(
                        CompletionResponse(
                            id=request_id,
                            created=created,
                            model=target.model_name,
                            choices=choices,
                            routing=target.routing if first else None,
                        )
                    )
                    first = False
        except ServingError as exc:
            yield sse_error(exc)
        else:
            if request.include_usage:
                yield sse_event(
                    CompletionResponse(
                        id=request_id,
                        created=created,
                        model=target.model_name,
                        choices=[],
                        usage=usage(len(prompt_ids), completion_tokens),
                    )
                )
        yield SSE_DONE
