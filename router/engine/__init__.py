"""Engine backends behind one interface; only this package imports vLLM."""

from __future__ import annotations

from typing import TYPE_CHECKING

from router.engine.base import AdapterRef, Engine, EngineError, GenerationStep, ManagedEngine, SamplingOptions

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from router.engine.tool_parser import ToolCallParser
    from router.settings import Settings

__all__ = [
    "AdapterRef",
    "Engine",
    "EngineError",
    "GenerationStep",
    "ManagedEngine",
    "SamplingOptions",
    "build_engine",
    "build_tool_parser",
]


def build_engine(settings: Settings) -> ManagedEngine:
    """The backend the settings pick, not started yet (``await engine.start()``)."""
    if settings.engine == "remote":
        from router.engine.replicas import ReplicaPool

        return ReplicaPool.from_settings(settings)
    from router.engine.supervisor import EngineSupervisor
    from router.engine.vllm_engine import VllmEngine, engine_setup

    setup = engine_setup(settings)
    # The in-process engine is rebuilt by its supervisor when it dies or hangs.
    return EngineSupervisor(
        lambda: VllmEngine.from_settings(settings, setup),
        setup=setup,
        max_model_len=settings.max_model_len,
        hang_s=settings.engine_hang_s,
    )


def build_tool_parser(settings: Settings, tokenizer: PreTrainedTokenizerBase) -> ToolCallParser | None:
    """vLLM's tool-call parser the settings name, if any (it needs vLLM beside the router)."""
    if settings.tool_parser is None:
        return None
    from router.engine.tool_parser import ToolCallParser

    return ToolCallParser(settings.tool_parser, tokenizer)
