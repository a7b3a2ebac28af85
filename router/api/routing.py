"""``POST /v1/route`` (explain without generating), ``GET /v1/router``, and the router admin endpoints."""

from __future__ import annotations

from fastapi import APIRouter

from router.api.deps import Routing
from router.protocol import (
    ErrorResponse,
    RouteRequest,
    RouterEvalRequest,
    RouterEvaluation,
    RouterExamples,
    RouterInfo,
    RouterTrainRequest,
    RoutingInfo,
)

router = APIRouter(tags=["routing"])
# Training data and retraining: admin keys only.
admin_router = APIRouter(tags=["routing"])


@router.post("/v1/route", responses={400: {"model": ErrorResponse}})
async def route(body: RouteRequest, routing: Routing) -> RoutingInfo:
    return await routing.route(body)


@router.get("/v1/router")
async def router_info(routing: Routing) -> RouterInfo:
    return routing.info()


@admin_router.get("/v1/router/examples")
async def router_examples(routing: Routing) -> RouterExamples:
    return routing.examples()


@admin_router.post("/v1/router/train", responses={code: {"model": ErrorResponse} for code in (400, 409, 422)})
async def train_router(body: RouterTrainRequest, routing: Routing) -> RouterInfo:
    return await routing.train(body)


@admin_router.post("/v1/router/evaluate", responses={code: {"model": ErrorResponse} for code in (400, 409)})
async def evaluate_router(body: RouterEvalRequest, routing: Routing) -> RouterEvaluation:
    return await routing.evaluate(body)
