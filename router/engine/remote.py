"""One `vllm serve --enable-lora` replica over HTTP: health, runtime LoRA load/unload, streamed completions.

Prompts go as token ids to ``/v1/completions`` (serving renders the chat template itself, as for the
in-process engine), the adapter is picked with the OpenAI ``model`` field, and adapters are loaded with
vLLM's runtime endpoints (the replica runs with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=true``, which is why it
must only be reachable on a private network).

The client is aiohttp, whose HTTP parser is compiled: every token of every relayed stream is a chunk to parse,
and a pure-Python client spent several times the event loop's time on each.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import aiohttp

from router.engine.base import (
    AdapterRef,
    CompletionDelta,
    EngineError,
    GenerationStep,
    RequestRejected,
    SamplingOptions,
    TokenLogprob,
)

HEALTH_TIMEOUT_S = 2.0
CONNECT_TIMEOUT_S = 2.0


class ReplicaUnreachable(EngineError):
    """The replica refused or dropped the connection before the request reached it: safe to send elsewhere."""


class AdapterMissing(EngineError):
    """The replica does not know the adapter (it restarted since it was loaded there)."""


def lora_name(adapter: AdapterRef) -> str:
    # The id keeps a re-registered name (new id, maybe new weights) apart from the old one on the replica;
    # `@` cannot occur in a registered name.
    return f"{adapter.name}@{adapter.id}"


# What fails before the request reached the replica, so that another replica can take it.
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
# Read timeouts are asyncio's TimeoutError subclasses, not all of them aiohttp's ClientError.
_FAILED = (aiohttp.ClientError, asyncio.TimeoutError)


@dataclass(frozen=True)
class _Reply:
    status: int
    text: str

    def error(self) -> tuple[str, str | None]:
        """The message and param of vLLM's OpenAI-shaped error body."""
        try:
            error = json.loads(self.text)["error"]
            return str(error["message"]), error.get("param")
        except (ValueError, KeyError, TypeError):
            return self.text[:500], None

    def raise_for(self, what: str) -> None:
        if self.status >= 400:
            raise EngineError(f"{what}: HTTP {self.status}: {self.error()[0]}")


class ReplicaClient:
    def __init__(self, url: str, *, base_model: str, api_key: str | None, read_timeout_s: float) -> None:
        self.url = url.rstrip("/")
        self.base_model = base_model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=CONNECT_TIMEOUT_S, sock_read=read_timeout_s
        )
        self._session: aiohttp.ClientSession | None = None

    @property
    def _http(self) -> aiohttp.ClientSession:
        # Made on first use: a session belongs to the event loop it is made in; the pool is built before it.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                self.url,
                headers=self._headers,
                timeout=self._timeout,
                # One replica takes many concurrent streams: no bound on connections here.
                connector=aiohttp.TCPConnector(limit=0),
            )
        return self._session

    async def check_health(self) -> None:
        try:
            async with self._http.get(
                "/health", timeout=aiohttp.ClientTimeout(total=HEALTH_TIMEOUT_S)
            ) as response:
                status = response.status
        except _FAILED as exc:
            raise EngineError(f"replica {self.url} unreachable: {_describe(exc)}") from exc
        if status != 200:
            raise EngineError(f"replica {self.url} unhealthy: HTTP {status}")

    async def load(self, adapter: AdapterRef) -> bool:
        """Load the adapter's weights on the replica; False when it already had them."""
        body = {"lora_name": lora_name(adapter), "lora_path": str(adapter.path)}
        reply = await self._post("/v1/load_lora_adapter", body)
        if reply.status == 400 and "already been loaded" in reply.text:
            return False
        reply.raise_for(f"loading adapter {adapter.name} on replica {self.url}")
        return True

    async def unload(self, adapter: AdapterRef) -> None:
        reply = await self._post("/v1/unload_lora_adapter", {"lora_name": lora_name(adapter)})
        if reply.status != 404:  # not there: nothing to do
            reply.raise_for(f"unloading adapter {adapter.name} on replica {self.url}")

    async def stream(
        self,
        request_id: str,
        prompt_token_ids: list[int],
        sampling: SamplingOptions,
        adapter: AdapterRef | None,
    ) -> AsyncGenerator[GenerationStep, None]:
        body = {
            "model": lora_name(adapter) if adapter else self.base_model,
            "prompt": prompt_token_ids,
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "top_k": sampling.top_k,
            "min_p": sampling.min_p,
            "presence_penalty": sampling.presence_penalty,
            "frequency_penalty": sampling.frequency_penalty,
            "repetition_penalty": sampling.repetition_penalty,
            "n": sampling.n,
            "stop": list(sampling.stop),
            "seed": sampling.seed,
            "ignore_eos": sampling.ignore_eos,
            "skip_special_tokens": sampling.skip_special_tokens,
            "stream": True,
            # Token counts per delta, as the in-process engine reports them.
            "return_token_ids": True,
        }
        if sampling.logit_bias:
            body["logit_bias"] = {str(token): bias for token, bias in sampling.logit_bias}
        if sampling.structured is not None:
            body["structured_outputs"] = sampling.structured.as_vllm_fields()
        if sampling.logprobs is not None:
            # Token ids rather than text, so the router names tokens with its own tokenizer on every engine.
            body |= {"logprobs": sampling.logprobs, "return_tokens_as_token_ids": True}
        try:
            response = await self._http.post(
                "/v1/completions", json=body, headers={"X-Request-Id": request_id}
            )
        except _NOT_SENT as exc:
            raise ReplicaUnreachable(f"replica {self.url} unreachable: {_describe(exc)}") from exc
        except _FAILED as exc:
            raise EngineError(f"replica {self.url} failed: {_describe(exc)}") from exc
        # Closing the response (the client went away, or this generator is closed) drops the connection, and
        # vLLM aborts the request when its client disconnects.
        try:
            if response.status != 200:
                reply = _Reply(response.status, await response.text())
                if reply.status == 404 and adapter is not None:
                    raise AdapterMissing(f"replica {self.url} does not have adapter {adapter.name}")
                if reply.status == 400:
                    raise RequestRejected(*reply.error())
                reply.raise_for(f"replica {self.url}")
            finished: set[int] = set()
            pending = b""
            async for data in response.content.iter_any():
                *lines, pending = (pending + data).split(b"\n")
                for line in lines:
                    if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                        continue
                    step = _step(json.loads(line[6:]), sampling, finished, self.url)
                    if step is not None:
                        yield step
        except _FAILED as exc:
            raise EngineError(f"replica {self.url} failed mid-stream: {_describe(exc)}") from exc
        finally:
            # Not released to the pool: a stream left unread must end on the replica too.
            if not response.content.at_eof():
                response.close()
            response.release()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _post(self, path: str, body: dict) -> _Reply:
        try:
            async with self._http.post(path, json=body) as response:
                return _Reply(response.status, await response.text())
        except _NOT_SENT as exc:
            raise ReplicaUnreachable(f"replica {self.url} unreachable: {_describe(exc)}") from exc
        except _FAILED as exc:
            raise EngineError(f"replica {self.url} failed: {_describe(exc)}") from exc


def _step(
    chunk: dict[str, Any], sampling: SamplingOptions, finished: set[int], url: str
) -> GenerationStep | None:
    """One streamed completion chunk as a step; ``finished`` collects the choices that ended so far."""
    if "error" in chunk:
        error = chunk["error"]
        message = error.get("message", str(error))
        # A request the replica took and then found it cannot serve (a grammar that fails to compile in its
        # engine) ends its stream with the error status vLLM would have answered.
        if error.get("code") == 400:
            raise RequestRejected(message, error.get("param"))
        raise EngineError(f"replica {url}: {message}")
    deltas = []
    for choice in chunk.get("choices", []):
        if choice.get("finish_reason"):
            finished.add(choice["index"])
        token_ids = choice.get("token_ids") or []
        deltas.append(
            CompletionDelta(
                index=choice["index"],
                text=choice.get("text") or "",
                num_tokens=len(token_ids),
                finish_reason=choice.get("finish_reason"),
                logprobs=_token_logprobs(choice["logprobs"], sampling.logprobs or 0)
                if sampling.logprobs is not None and choice.get("logprobs")
                else None,
            )
        )
    return GenerationStep(deltas=deltas, finished=len(finished) == sampling.n) if deltas else None


def _token_logprobs(logprobs: dict[str, Any], top: int) -> list[TokenLogprob]:
    """vLLM's completion logprobs with tokens written ``token_id:<id>``; each position's top entries hold
    the sampled token too, so up to ``top`` + 1 of them."""
    result = []
    for token, logprob, candidates in zip(
        logprobs["tokens"], logprobs["token_logprobs"], logprobs["top_logprobs"], strict=True
    ):
        ranked = sorted(((_token_id(t), lp) for t, lp in (candidates or {}).items()), key=lambda c: -c[1])
        result.append(TokenLogprob(_token_id(token), logprob, tuple(ranked[:top])))
    return result


def _token_id(token: str) -> int:
    return int(token.removeprefix("token_id:"))


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
