"""Services are built once at start-up and kept on ``app.state``; routes reach them through these."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from router.serving.adapters import AdapterServing
from router.serving.admission import Admission
from router.serving.chat import ChatServing
from router.serving.completions import CompletionServing
from router.serving.health import HealthServing
from router.serving.metrics import MetricsServing
from router.serving.models import ModelsServing
from router.serving.routing import RoutingServing


def _admission(request: Request) -> Admission:
    return request.app.state.admission


def _chat(request: Request) -> ChatServing:
    return request.app.state.chat


def _completions(request: Request) -> CompletionServing:
    return request.app.state.completions


def _models(request: Request) -> ModelsServing:
    return request.app.state.models


def _adapters(request: Request) -> AdapterServing:
    return request.app.state.adapters


def _health(request: Request) -> HealthServing:
    return request.app.state.health


def _metrics(request: Request) -> MetricsServing:
    return request.app.state.metrics


def _routing(request: Request) -> RoutingServing:
    return request.app.state.routing


Admitting = Annotated[Admission, Depends(_admission)]
Chat = Annotated[ChatServing, Depends(_chat)]
Completions = Annotated[CompletionServing, Depends(_completions)]
Models = Annotated[ModelsServing, Depends(_models)]
Adapters = Annotated[AdapterServing, Depends(_adapters)]
Health = Annotated[HealthServing, Depends(_health)]
Routing = Annotated[RoutingServing, Depends(_routing)]
Metrics = Annotated[MetricsServing, Depends(_metrics)]
