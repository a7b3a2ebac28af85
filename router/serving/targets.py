"""Resolve a request's ``model`` to what answers it: the base model, a pinned adapter, or routing."""

from __future__ import annotations

from dataclasses import dataclass

from lora_registry import AdapterRegistry, AdapterSpec
from router.engine.base import AdapterRef
from router.errors import ModelNotFoundError
from router.protocol import RoutingInfo
from router.settings import AUTO_MODEL

# Until a router is trained, `auto` answers with the base model and says so.
NO_ROUTER = "no router is trained yet; answered by the base model"


@dataclass(frozen=True)
class Target:
    model_name: str
    adapter: AdapterSpec | None
    routing: RoutingInfo

    @property
    def adapter_ref(self) -> AdapterRef | None:
        return AdapterRef.from_spec(self.adapter) if self.adapter else None


class ModelResolver:
    def __init__(self, registry: AdapterRegistry, base_model_name: str) -> None:
        self._registry = registry
        self.base_model_name = base_model_name

    def available(self) -> list[str]:
        return [self.base_model_name, AUTO_MODEL, *self._registry.names()]

    def resolve(self, model: str) -> Target:
        if model == self.base_model_name:
            return Target(model, None, RoutingInfo(requested_model=model, mode="base"))
        if model == AUTO_MODEL:
            return Target(
                self.base_model_name,
                None,
                RoutingInfo(requested_model=model, mode="auto", fallback_reason=NO_ROUTER),
            )
        spec = self._registry.find(model)
        if spec is None:
            raise ModelNotFoundError(
                f"The model {model!r} does not exist. Available: {', '.join(self.available())}",
                param="model",
            )
        return Target(spec.name, spec, RoutingInfo(requested_model=model, mode="pinned", adapter=spec.name))
