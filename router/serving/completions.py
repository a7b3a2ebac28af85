"""Text completions (``/v1/completions``): raw prompts, no chat template; an adapter's stops still apply."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator

from router.engine.base import CompletionDelta, GenerationStep
from router.errors import InvalidRequestError
from router.protocol import ChatMessage, CompletionChoice, CompletionRequest, CompletionResponse
from router.routing.resolver import Target
from router.serving.generation import GenerationServing, ServingResult, usage
from router.serving.logprobs import completion_logprobs
from router.serving.sampling import structured_output
from router.settings import AUTO_MODEL


class CompletionServing(GenerationServing):
    async def create(self, request: CompletionRequest) -> ServingResult:
        request_id = f"cmpl-{uuid.uuid4().hex}"
        if len(request.prompts) > 1 and (request.stream or request.model == AUTO_MODEL):
            raise InvalidRequestError(
                "streaming and `auto` routing take a single prompt; send one request per prompt",
                param="prompt",
            )
        self._generator.ensure_available()
        target = await self._resolve(request.model, [ChatMessage(role="user", content=request.prompts[0])])
        encoded = [await self._renderer.encode_off_loop(p) for p in request.prompts]
        if any(not ids for ids in encoded):
            raise InvalidRequestError("prompt must not be empty", param="prompt")
        structured = structured_output(request, target.adapter.defaults if target.adapter else None)
        samplings = [
            self._sampling(
                request,
                target,
                ids,
                requested_max_tokens=request.max_tokens,
                prompt_param="prompt",
                logprobs=request.logprobs_count,
                structured=structured,
            )
            for ids in encoded
        ]
        if request.stream:
            steps = await self._generator.start(request_id, encoded[0], samplings[0], target)
            stream = self._stream(request, request_id, target, len(encoded[0]), steps)
            return ServingResult(target, request_id, stream=stream)
        results = await asyncio.gather(
            *(
                self._generator.collect(f"{request_id}-{i}", ids, sampling, target)
                for i, (ids, sampling) in enumerate(zip(encoded, samplings, strict=True))
            )
        )
        choices = [
            CompletionChoice(
                index=p * request.n + i,
                text=text,
                finish_reason=collected.finish_reasons[i],
                logprobs=None
                if collected.logprobs[i] is None
                else completion_logprobs(collected.logprobs[i] or [], self._renderer),
            )
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
        prompt_tokens: int,
        steps: AsyncGenerator[GenerationStep, None],
    ) -> AsyncIterator[str]:
        created = int(time.time())
        opened = False
        # Where each completion's next token starts in its text, for the logprobs' text_offset.
        offsets = [0] * request.n

        def choice(delta: CompletionDelta) -> CompletionChoice:
            logprobs = None
            if delta.logprobs is not None:
                logprobs = completion_logprobs(delta.logprobs, self._renderer, offsets[delta.index])
                if logprobs.text_offset:
                    offsets[delta.index] = logprobs.text_offset[-1] + len(logprobs.tokens[-1])
            return CompletionChoice(
                index=delta.index, text=delta.text, finish_reason=delta.finish_reason, logprobs=logprobs
            )

        def event(deltas: list[CompletionDelta]) -> CompletionResponse:
            # The first event carries the routing explanation.
            nonlocal opened
            routing, opened = (None if opened else target.routing), True
            return CompletionResponse(
                id=request_id,
                created=created,
                model=target.model_name,
                choices=[choice(d) for d in deltas],
                routing=routing,
            )

        async for sse in self._sse(
            request,
            steps,
            prompt_tokens,
            event=event,
            usage_event=lambda used: CompletionResponse(
                id=request_id, created=created, model=target.model_name, choices=[], usage=used
            ),
        ):
            yield sse
