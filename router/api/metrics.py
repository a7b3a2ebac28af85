"""``GET /metrics`` in Prometheus' text format; open like ``/health``, so a scraper needs no key."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from router.api.deps import Metrics

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(serving: Metrics) -> Response:
    return Response(await serving.exposition(), media_type=CONTENT_TYPE_LATEST)
