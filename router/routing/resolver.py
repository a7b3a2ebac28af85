"""Resolve a request's ``model`` to what answers it: the base model, a pinned adapter, or routing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from lora_registry import AdapterRegistry, AdapterSpec, ComposePart
from lora_registry.composition import CompositionError, is_composition, parse_composition
from router.engine.base import AdapterRef
from router.errors import ModelNotFoundError
from router.protocol import ChatMessage, RoutingInfo
from router.routing.compositions import Compositions
from router.routing.manager import RouterManager
from router.routing.policy import Decision, FallbackReason
from router.settings import AUTO_MODEL

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    model_name: str
    adapter: AdapterSpec | None
    routing: RoutingInfo

    @property
    def adapter_ref(self) -> AdapterRef | None:
        return AdapterRef.from_spec(self.adapter) if self.adapter else None

    def headers(self) -> dict[str, str]:
        headers = {"x-lora-adapter": self.adapter.name if self.adapter else "none"}
        routing = self.routing
        if routing.mode == "auto":
            headers |= {
                "x-router-adapter": routing.adapter or "none",
                "x-router-label": routing.label or "none",
                "x-router-confidence": f"{routing.confidence:.4f}"
                if routing.confidence is not None
                else "none",
                "x-router-fallback": routing.fallback_reason or "none",
                "x-router-sticky": "true" if routing.sticky else "false",
                "x-router-latency-ms": f"{routing.latency_ms or 0.0:.2f}",
                "x-router-version": routing.router_version or "none",
            }
        return headers


class ModelResolver:
    def __init__(
        self,
        registry: AdapterRegistry,
        router: RouterManager,
        compositions: Compositions,
        base_model_name: str,
    ) -> None:
        self._registry = registry
        self._router = router
        self._compositions = compositions
        self.base_model_name = base_model_name

    async def _adapter(self, name: str) -> AdapterSpec | None:
        """The registered adapter ``name`` from the registry's snapshot; only a name the snapshot does not
        know is looked up in the store, off the event loop."""
        spec = self._registry.find(name)
        return spec if spec is not None else await asyncio.to_thread(self._registry.find_stored, name)

    def available(self) -> list[str]:
        return [self.base_model_name, AUTO_MODEL, *self._registry.names()]

    async def resolve(self, model: str, messages: Sequence[ChatMessage]) -> Target:
        if model == AUTO_MODEL:
            return await self.route(messages)
        if model == self.base_model_name:
            return Target(model, None, RoutingInfo(requested_model=model, mode="base", model=model))
        if is_composition(model):
            return await self.compose(model)
        spec = await self._adapter(model)
        if spec is None:
            raise ModelNotFoundError(
                f"The model {model!r} does not exist. Available: {', '.join(self.available())}",
                param="model",
            )
        return Target(
            spec.name,
            spec,
            RoutingInfo(requested_model=model, mode="pinned", model=spec.name, adapter=spec.name),
        )

    async def _composite(self, model: str, parts: Sequence[ComposePart]) -> AdapterSpec:
        specs = []
        for part in parts:
            spec = await self._adapter(part.adapter)
            if spec is None:
                what = f"composition {model!r}"
                raise CompositionError.unknown_part(what, part.adapter, self._registry.names(), param="model")
            specs.append(spec)
        return await self._compositions.get(parts, specs)

    async def compose(self, model: str) -> Target:
        parts = parse_composition(model)
        composite = await self._composite(model, parts)
        routing = RoutingInfo(
            requested_model=model,
            mode="composed",
            model=composite.name,
            adapter=composite.name,
            composition={part.adapter: part.weight for part in parts},
        )
        return Target(composite.name, composite, routing)

    async def _blend(self, decision: Decision) -> AdapterSpec | None:
        try:
            return await self._composite(decision.model, decision.blend)
        except CompositionError:
            logger.warning("could not blend %s; the fallback answers", decision.model, exc_info=True)
            return None

    async def route(self, messages: Sequence[ChatMessage]) -> Target:
        routed = await self._router.route(messages)
        decision = routed.decision
        model, reason, detail = decision.model, decision.fallback_reason, decision.detail
        spec = await self._blend(decision) if decision.blend else None
        blended = spec is not None
        if decision.blend and not blended:  # the router never fails a request for being unsure
            model, reason = self._router.config.fallback, FallbackReason.AMBIGUOUS
            detail = f"{detail}; the blend could not be served, so the fallback answered"
        if spec is None and model != self.base_model_name:
            spec = await self._adapter(model)
        if spec is None and model != self.base_model_name:
            # Unregistered since the decision, or a fallback adapter that is gone: the base answers.
            model, reason = self.base_model_name, FallbackReason.NO_ADAPTER
            detail = f"{decision.model!r} is not registered; answered by the base model"
        routing = RoutingInfo(
            requested_model=AUTO_MODEL,
            mode="blend" if blended else "auto",
            composition={p.adapter: p.weight for p in decision.blend} if blended else None,
            model=model,
            adapter=spec.name if spec else None,
            label=decision.label,
            confidence=decision.confidence,
            scores=dict(decision.scores) or None,
            adapter_scores=dict(decision.target_scores) or None,
            similarity=decision.similarity,
            sticky=decision.sticky or None,
            fallback_reason=reason,
            detail=detail,
            latency_ms=round(routed.latency_ms, 3),
            router_version=routed.version,
        )
        return Target(model, spec, routing)
