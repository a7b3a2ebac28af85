"""What chat and text completions share: engine streams, in-flight accounting, SSE framing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from lora_registry import ApiError
from router.engine.base import (
    CompletionDelta,
    Engine,
    EngineError,
    GenerationStep,
    RequestRejected,
    SamplingOptions,
    StructuredOutput,
    TokenLogprob,
)
from router.errors import EngineUnavailableError, InvalidRequestError
from router.observability import context
from router.observability.metrics import ServiceMetrics, outcome_of
from router.protocol import ChatMessage, Usage, _SamplingFields
from router.routing.resolver import ModelResolver, Target
from router.serving.prompts import PromptRenderer
from router.serving.sampling import ModelDefaults, resolve_sampling
from router.serving.sse import SSE_DONE, sse_error, sse_event
from router.settings import Settings

logger = logging.getLogger(__name__)


class InFlight:
    """Requests holding an engine stream, in total and per adapter id.

    Unregistering an adapter must not pull its weights from under a request still streaming on it, so its
    removal from the engine waits until the adapter's count drops to zero.
    """

    def __init__(self) -> None:
        self.total = 0
        # Of those, the ones with no first token yet: the engine's queue as serving sees it.
        self.waiting = 0
        self._by_adapter: Counter[int] = Counter()
        self._when_idle: dict[int, list[Callable[[], Coroutine[Any, Any, None]]]] = {}

    @contextmanager
    def track(self, adapter_id: int | None) -> Iterator[None]:
        self.total += 1
        if adapter_id is not None:
            self._by_adapter[adapter_id] += 1
        try:
            yield
        finally:
            self.total -= 1
            if adapter_id is not None:
                self._by_adapter[adapter_id] -= 1
                if self._by_adapter[adapter_id] == 0:
                    del self._by_adapter[adapter_id]
                    for callback in self._when_idle.pop(adapter_id, []):
                        asyncio.get_running_loop().create_task(callback())

    async def when_idle(self, adapter_id: int, callback: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``callback`` now if no request uses the adapter, else once the last one ends."""
        if self._by_adapter[adapter_id] == 0:
            await callback()
        else:
            self._when_idle.setdefault(adapter_id, []).append(callback)


@dataclass
class Collected:
    """A whole generation gathered from a stream: text, finish reason and logprobs per completion index."""

    n: int
    texts: list[str] = field(init=False)
    finish_reasons: list[str | None] = field(init=False)
    logprobs: list[list[TokenLogprob] | None] = field(init=False)
    completion_tokens: int = 0

    def __post_init__(self) -> None:
        self.texts = [""] * self.n
        self.finish_reasons = [None] * self.n
        self.logprobs = [None] * self.n

    def add(self, step: GenerationStep) -> None:
        for delta in step.deltas:
            self.texts[delta.index] += delta.text
            self.completion_tokens += delta.num_tokens
            if delta.logprobs is not None:
                gathered = self.logprobs[delta.index]
                if gathered is None:
                    gathered = self.logprobs[delta.index] = []
                gathered.extend(delta.logprobs)
            if delta.finish_reason is not None:
                self.finish_reasons[delta.index] = delta.finish_reason


@dataclass
class ServingResult:
    """Either a whole response or an SSE stream, with what the API needs for its headers."""

    target: Target
    request_id: str
    response: BaseModel | None = None
    stream: AsyncIterator[str] | None = None


def usage(prompt_tokens: int, completion_tokens: int) -> Usage:
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


class Generator:
    """Runs one engine request for a resolved target, keeping in-flight counts and mapping engine faults."""

    def __init__(
        self, engine: Engine, in_flight: InFlight, metrics: ServiceMetrics, retry_after_s: int
    ) -> None:
        self.engine = engine
        self.in_flight = in_flight
        self.metrics = metrics
        self._retry_after_s = retry_after_s

    def ensure_available(self) -> None:
        """Refuse up front, before routing and before a stream's headers go out, while the engine is down."""
        if (reason := self.engine.unavailable()) is not None:
            raise EngineUnavailableError(reason, retry_after_s=self._retry_after_s)

    async def stream(
        self, request_id: str, prompt_ids: list[int], sampling: SamplingOptions, target: Target
    ) -> AsyncGenerator[GenerationStep, None]:
        adapter = target.adapter_ref
        request = context.current()
        # Time to first token counts from the request's arrival, so routing is part of it.
        arrived = request.started if request is not None else time.perf_counter()
        first_token: float | None = None
        tokens = 0
        self.in_flight.waiting += 1
        with self.in_flight.track(adapter.id if adapter else None):
            try:
                # Closing this stream early (client gone) must close the engine's, which aborts the request.
                async with aclosing(self.engine.generate(request_id, prompt_ids, sampling, adapter)) as steps:
                    async for step in steps:
                        produced = sum(delta.num_tokens for delta in step.deltas)
                        if produced and first_token is None:
                            first_token = time.perf_counter()
                            self.in_flight.waiting -= 1
                        tokens += produced
                        yield step
            except EngineError as exc:
                logger.error("request %s failed in the engine: %s", request_id, exc)
                raise EngineUnavailableError(str(exc), retry_after_s=self._retry_after_s) from exc
            except RequestRejected as exc:
                raise _refused(exc, sampling) from exc
            finally:
                if first_token is None:
                    self.in_flight.waiting -= 1
                self.metrics.record_generation(
                    target.model_name,
                    first_token_s=None if first_token is None else first_token - arrived,
                    tokens=tokens,
                    decode_s=0.0 if first_token is None else time.perf_counter() - first_token,
                )

    async def collect(
        self, request_id: str, prompt_ids: list[int], sampling: SamplingOptions, target: Target
    ) -> Collected:
        collected = Collected(sampling.n)
        async for step in self.stream(request_id, prompt_ids, sampling, target):
            collected.add(step)
        return collected

    async def start(
        self, request_id: str, prompt_ids: list[int], sampling: SamplingOptions, target: Target
    ) -> AsyncGenerator[GenerationStep, None]:
        """The stream, begun: the engine has taken the request and made its first step. A request the engine
        refuses (a schema it cannot compile) then fails here, while an HTTP status can still say so, rather
        than as an event inside a `200` stream."""
        steps = self.stream(request_id, prompt_ids, sampling, target)
        try:
            first = await anext(steps)
        except StopAsyncIteration:
            return _replay([], steps)
        except BaseException:
            await steps.aclose()
            raise
        return _replay([first], steps)


class GenerationServing:
    """Base of the endpoints that generate: the pieces each of them resolves a request with."""

    def __init__(
        self,
        settings: Settings,
        resolver: ModelResolver,
        renderer: PromptRenderer,
        generator: Generator,
        model_defaults: ModelDefaults,
    ) -> None:
        self._settings = settings
        self._resolver = resolver
        self._renderer = renderer
        self._generator = generator
        self._model_defaults = model_defaults

    async def _resolve(self, model: str, messages: list[ChatMessage]) -> Target:
        """What answers, counted in the metrics and named in the request's log line."""
        target = await self._resolver.resolve(model, messages)
        routing = target.routing
        self._generator.metrics.record_target(routing)
        context.annotate(
            model=routing.model,
            outcome=outcome_of(routing),
            label=routing.label,
            confidence=routing.confidence,
            fallback_reason=routing.fallback_reason,
        )
        return target

    def _sampling(
        self,
        request: _SamplingFields,
        target: Target,
        prompt_ids: list[int],
        *,
        requested_max_tokens: int | None,
        prompt_param: str,
        logprobs: int | None,
        structured: StructuredOutput | None,
    ) -> SamplingOptions:
        return resolve_sampling(
            request,
            requested_max_tokens=requested_max_tokens,
            defaults=target.adapter.defaults if target.adapter else None,
            model_defaults=self._model_defaults,
            structured=structured,
            logprobs=logprobs,
            default_max_tokens=self._settings.default_max_tokens,
            max_n=self._settings.max_n,
            prompt_tokens=len(prompt_ids),
            max_model_len=self._generator.engine.max_model_len,
            prompt_param=prompt_param,
        )

    async def _sse(
        self,
        request: _SamplingFields,
        steps: AsyncGenerator[GenerationStep, None],
        prompt_tokens: int,
        *,
        event: Callable[[list[CompletionDelta]], BaseModel],
        usage_event: Callable[[Usage], BaseModel],
    ) -> AsyncIterator[str]:
        """The engine's steps as SSE events (``event`` shapes the deltas that carry text or an end), then
        the usage when asked for, then ``[DONE]``."""
        completion_tokens = 0
        try:
            async with aclosing(steps):
                async for step in steps:
                    completion_tokens += sum(delta.num_tokens for delta in step.deltas)
                    visible = [
                        delta for delta in step.deltas if delta.text or delta.finish_reason or delta.logprobs
                    ]
                    if visible:
                        yield sse_event(event(visible))
        except ApiError as exc:
            # Headers are gone already: the error travels as an event, and the stream still ends cleanly.
            yield sse_error(exc)
        else:
            if request.include_usage:
                yield sse_event(usage_event(usage(prompt_tokens, completion_tokens)))
        yield SSE_DONE


async def _replay(
    first: list[GenerationStep], rest: AsyncGenerator[GenerationStep, None]
) -> AsyncGenerator[GenerationStep, None]:
    async with aclosing(rest):
        for step in first:
            yield step
        async for step in rest:
            yield step


def _refused(exc: RequestRejected, sampling: SamplingOptions) -> InvalidRequestError:
    """The engine's refusal, naming the request's field: a constraint's own field (response_format,
    structured_outputs or tools) where the engine blames structured output or names nothing."""
    param = exc.param
    if sampling.structured is not None and (param is None or param in _STRUCTURED_PARAMS):
        param = sampling.structured.source
    return InvalidRequestError(f"the engine refused the request: {exc.message}", param=param)


# vLLM's names for the structured-output fields its server takes.
_STRUCTURED_PARAMS = {"structured_outputs", "response_format", "guided_json", "guided_regex", "guided_choice"}
