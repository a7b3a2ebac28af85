"""The FastAPI application: services built once in the lifespan, thin routes, OpenAI-shaped errors."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any, TypedDict

from fastapi import Depends, FastAPI, Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from lora_registry import AdapterRegistry, ApiError, BaseModelInfo, open_adapter_store
from lora_registry.composite import COMPOSITIONS_FOLDER
from router.api import adapters, generation, health, metrics, models, routing, ui
from router.auth import ApiKeys, Scope, require
from router.default_experts import install_default_experts
from router.engine import build_engine, build_tool_parser
from router.errors import error_response
from router.limits import BodySizeLimit
from router.observability.context import RequestIdMiddleware
from router.observability.metrics import ServiceMetrics
from router.protocol import REFUSED, ErrorResponse
from router.routing.compositions import Compositions
from router.routing.manager import RouterManager
from router.routing.open_store import open_router_store
from router.routing.policy import PolicyConfig
from router.routing.resolver import ModelResolver
from router.routing.training import TrainingOptions
from router.serving.adapters import AdapterServing
from router.serving.admission import Admission
from router.serving.chat import ChatServing
from router.serving.completions import CompletionServing
from router.serving.generation import Generator, InFlight
from router.serving.health import HealthServing
from router.serving.metrics import MetricsServing
from router.serving.models import ModelsServing
from router.serving.prompts import PromptRenderer
from router.serving.routing import RoutingServing
from router.serving.sampling import ModelDefaults
from router.serving.tools import Tools
from router.settings import AUTO_MODEL, DEFAULT_BASE_MODEL, Settings

logger = logging.getLogger(__name__)


def build_registry(settings: Settings) -> AdapterRegistry:
    root = settings.resolved_adapter_root
    root.mkdir(parents=True, exist_ok=True)
    registry = AdapterRegistry(
        open_adapter_store(settings.database_url, settings.resolved_registry_db),
        adapter_root=root,
        base=BaseModelInfo.from_folder(settings.resolved_base_model_path, settings.base_model_name),
        max_rank=settings.max_lora_rank,
        reserved_names={AUTO_MODEL, settings.base_model_name},
        max_adapters=settings.max_adapters,
        max_adapter_bytes=settings.max_adapter_bytes,
    )
    if settings.registry_file is not None:
        added = registry.seed_from_yaml(settings.registry_file)
        logger.info("registry file %s added %d adapter(s)", settings.registry_file, len(added))
    if settings.default_experts:
        if settings.base_model_name == DEFAULT_BASE_MODEL:
            added = install_default_experts(registry, root)
            logger.info("default experts: %d newly registered", len(added))
        else:
            logger.warning("default experts skipped: they are made for %s", DEFAULT_BASE_MODEL)
    return registry


def build_router(settings: Settings, registry: AdapterRegistry) -> RouterManager:
    import torch

    # The engine core is another process with its own threads; more here only fight it for the cores.
    # (The ONNX encoder gets the same bound through RouterStore.)
    torch.set_num_threads(settings.router_threads)
    store = open_router_store(settings)
    if settings.database_url:
        from router.routing.shared_store import PostgresRouterStore

        assert isinstance(store, PostgresRouterStore)
        # The first router replica on an empty database shares the router `prepare` made, so a new
        # deployment routes from the start.
        store.share_cached()
    router = RouterManager(
        store,
        PolicyConfig.from_settings(settings),
        adapters=lambda: set(registry.names()),
        context_turns=settings.router_context_turns,
        sticky_turns=settings.router_sticky_turns,
        training=TrainingOptions.from_settings(settings),
    )
    router.load_current()
    return router


async def _follow_shared_database(registry: AdapterRegistry, router: RouterManager, every_s: float) -> None:
    """Router replicas sharing a database see what another one registered, unregistered or made live within
    ``every_s``."""
    unreachable = False
    while True:
        await asyncio.sleep(every_s)
        try:
            if await asyncio.to_thread(registry.refresh):
                logger.info("adapters registered elsewhere: %s", ", ".join(registry.names()) or "none")
            unreachable = False
        except Exception as exc:
            if not unreachable:  # once per outage, not once per poll
                logger.error("could not read the adapter registry (%s); serving the adapters known", exc)
            unreachable = True
        if await router.sync():
            assert router.live is not None
            logger.info("router %s made live by another replica is now live here", router.live.version)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    registry = build_registry(settings)
    renderer = PromptRenderer.from_model_dir(settings.resolved_base_model_path, settings.chat_template)
    router = build_router(settings, registry)
    engine = build_engine(settings)
    await engine.start()
    in_flight = InFlight()
    admission = Admission(settings.max_admitted, settings.retry_after_s)
    metrics = ServiceMetrics()
    generator = Generator(engine, in_flight, metrics, settings.engine_retry_after_s)
    compositions = Compositions(
        settings.resolved_adapter_root / COMPOSITIONS_FOLDER,
        base_model=settings.base_model_name,
        max_rank=settings.max_lora_rank,
    )
    resolver = ModelResolver(registry, router, compositions, settings.base_model_name)
    state = app.state
    state.admission = admission
    model_defaults = ModelDefaults.from_folder(settings.resolved_base_model_path)
    tools = Tools(renderer, build_tool_parser(settings, renderer.tokenizer))
    state.chat = ChatServing(settings, resolver, renderer, generator, model_defaults, tools)
    state.completions = CompletionServing(settings, resolver, renderer, generator, model_defaults)
    state.models = ModelsServing(registry, settings.base_model_name)
    state.adapters = AdapterServing(registry, compositions, engine, in_flight, metrics)
    state.health = HealthServing(engine, settings.engine, in_flight, admission)
    state.metrics = MetricsServing(metrics, engine, registry, in_flight, admission)
    state.routing = RoutingServing(router, resolver, registry, settings.resolved_router_eval_file)
    logger.info("serving %s with %d adapter(s)", settings.base_model_name, len(registry.list()))
    follow = None
    if settings.database_url:
        follow = asyncio.get_running_loop().create_task(
            _follow_shared_database(registry, router, settings.sync_s)
        )
    # As vLLM's server does once started: the start-up heap (torch, tokenizer, encoder, engine client) set
    # aside from the cyclic collector, so a full collection under load does not walk it (long pauses that
    # show as p99 latency).
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        if follow is not None:
            follow.cancel()
        # uvicorn has already drained in-flight requests (up to its graceful-shutdown timeout).
        engine.shutdown()


def _json_error(
    status_code: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = error_response(status_code, message, param=param, code=code)
    return JSONResponse(body.model_dump(), status_code=status_code, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _json_error(exc.status_code, exc.message, param=exc.param, code=exc.code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = [str(part) for part in first.get("loc", ()) if part != "body"]
        param = ".".join(where) or None
        reason = str(first.get("msg"))
        if first.get("type") == "extra_forbidden":
            reason = "unknown field: this service does not take it (the README lists the fields it does)"
        elif where and where[0] in REFUSED:
            reason = f"not supported: {REFUSED[where[0]]}"
        message = f"{param}: {reason}" if param else reason
        return _json_error(400, message, param=param, code="invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = exc.headers
        if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
            # Starlette's Allow names the methods of the first route on the path only; list them all.
            headers = {**(headers or {}), "Allow": ", ".join(_methods_on(request.app, request.url.path))}
        return _json_error(exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return _json_error(500, "internal error; see the service log", code="internal_error")


def _methods_on(app: FastAPI, path: str) -> list[str]:
    methods = {
        method
        for route in app.routes
        if isinstance(route, APIRoute) and route.path_regex.match(path)
        for method in route.methods
    }
    return sorted(methods)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorResponse} for code in codes}


class _Guarded(TypedDict):
    """include_router's keywords for routes behind a key of some scope."""

    dependencies: Sequence[params.Depends]
    responses: dict[int | str, dict[str, Any]]


def build_app(settings: Settings) -> FastAPI:
    app = FastAPI(title="lora-router", version="0.1.0", lifespan=_lifespan)
    app.state.settings = settings
    app.state.api_keys = ApiKeys(settings.api_keys, admin_localhost=settings.admin_localhost)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # Added last, so it runs first: even a refused body gets a request id and an access log line.
    app.add_middleware(RequestIdMiddleware)
    user: _Guarded = {"dependencies": [Depends(require(Scope.USER))], "responses": _errors(401)}
    admin: _Guarded = {"dependencies": [Depends(require(Scope.ADMIN))], "responses": _errors(401, 403)}
    for module in (generation, models, routing):
        app.include_router(module.router, **user)
    app.include_router(routing.admin_router, **admin)
    app.include_router(adapters.router, **admin)
    app.include_router(health.router)
    app.include_router(health.admin_router, **admin)
    app.include_router(metrics.router)
    # The pages are static; what they do goes through the API with the key typed into them.
    app.include_router(ui.router)
    _install_error_handlers(app)
    return app
