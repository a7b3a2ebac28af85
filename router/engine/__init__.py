"""Engine backends behind one interface; only this package imports vLLM."""

from __future__ import annotations

from typing import TYPE_CHECKING

from router.engine.base import AdapterRef, Engine, EngineError, GenerationStep, SamplingOptions

if TYPE_CHECKING:
    from router.settings import Settings

__all__ = ["AdapterRef", "Engine", "EngineError", "GenerationStep", "SamplingOptions", "build_engine"]


def build_engine(settings: Settings) -> Engine:
    if settings.engine == "vllm":
        from router.engine.vllm_engine import VllmEngine

        return VllmEngine.from_settings(settings)
    raise ValueError(f"unknown engine backend {settings.engine!r}; available: vllm")
