"""Services are built once at start-up and kept on ``app.state``; routes reach them through these."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request

from router.serving.adapters import AdapterServing
from router.serving.admission import Admission
from router.serving.chat import ChatServing
from router.serving.completions import CompletionServing
from router.serving.health import HealthServing
from router.serving.metrics import MetricsServing
from router.serving.models import ModelsServing
from router.serving.routing import RoutingServing

T = TypeVar("T")


def _from_state(name: str, kind: type[T]) -> Callable[[Request], Coroutine[Any, Any, T]]:
    """A dependency handing routes the service kept on ``app.state`` under ``name``. A coroutine: FastAPI
    runs a plain function dependency in its thread pool, a thread hand-off per request for an attribute
    read."""

    async def get(request: Request) -> T:
        return getattr(request.app.state, name)

    return get


Admitting = Annotated[Admission, Depends(_from_state("admission", Admission))]
Chat = Annotated[ChatServing, Depends(_from_state("chat", ChatServing))]
Completions = Annotated[CompletionServing, Depends(_from_state("completions", CompletionServing))]
Models = Annotated[ModelsServing, Depends(_from_state("models", ModelsServing))]
Adapters = Annotated[AdapterServing, Depends(_from_state("adapters", AdapterServing))]
Health = Annotated[HealthServing, Depends(_from_state("health", HealthServing))]
Routing = Annotated[RoutingServing, Depends(_from_state("routing", RoutingServing))]
Metrics = Annotated[MetricsServing, Depends(_from_state("metrics", MetricsServing))]
