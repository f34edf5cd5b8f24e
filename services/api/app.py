"""The one place the HTTP API is wired: ``create_app(settings, ...)``.

Every dependency may be passed in (unit tests pass in-memory twins); the
ones left out are built from ``settings`` when the app starts (its lifespan)
and closed when it stops, in reverse order:

- one Postgres pool shared by the run-status store, the session index and
  the usage store (their tables are created if no projector has yet), and
  the price table of ``settings`` (a wrong one fails ``create_app``);
- the transcript cache on Redis, whose miss path finds runs in that store;
- a runs-API client (publisher + one log reader shared by every event stream).

The API keys come from ``settings.api_keys`` unless ``keys`` is given; an
app without keys is refused at once (it could answer nothing but 401).

Every request passes, outermost first: the metrics, the key check of
:class:`~.auth.KeyGate` (401 before any body is read), the body limit of
:class:`~.limits.BodyLimit` (``Options.max_body_bytes``, ``Options.body_timeout``), then the routes,
whose every backend call is bounded by ``Options.backend_timeout``
(:func:`~.backends.bounded`). The OpenAPI document declares each route's
error responses (:func:`error_statuses`) with the body of :mod:`.errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from runwire import __version__
from runwire.projections.runtime.paging import PageTokenSigner
from runwire.projections.usage.prices import PriceTable
from runwire.projections.usage.reader import UsageSource
from runwire.services.api import (
    routes_events,
    routes_me,
    routes_ops,
    routes_runs,
    routes_sessions,
    routes_usage,
    routes_web,
)
from runwire.services.api.auth import GUARDED_PREFIX, KeyGate, KeyRing
from runwire.services.api.backends import Backends, Options, bounded, by_tenant
from runwire.services.api.errors import ERROR_DESCRIPTIONS, ErrorBody, install_error_handlers
from runwire.services.api.limits import BodyLimit
from runwire.services.api.metrics import ApiMetrics, MetricsMiddleware
from runwire.services.api.ports import (
    LogSessionEraser,
    RunControl,
    RunReader,
    SessionEraser,
    SessionReader,
    TranscriptReader,
)
from runwire.settings import Settings

__all__ = ["close_streams", "create_app", "error_statuses"]

log = logging.getLogger(__name__)

POOL_SIZE = 8


def create_app(
    settings: Settings,
    *,
    keys: KeyRing | None = None,
    runs: RunReader | None = None,
    sessions: SessionReader | None = None,
    transcripts: TranscriptReader | None = None,
    control: RunControl | None = None,
    usage: UsageSource | None = None,
    eraser: SessionEraser | None = None,
    options: Options | None = None,
    metrics: ApiMetrics | None = None,
) -> FastAPI:
    """The API app; its backends open with its lifespan (see the module docstring)."""
    ring = keys if keys is not None else KeyRing.from_settings(settings)
    opts = options if options is not None else Options()
    prices = PriceTable.from_settings(settings)  # a wrong price table fails here, at once

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            opened = await _open_backends(
                settings, stack, runs, sessions, transcripts, control, usage, prices, opts
            )
            if eraser is not None or settings.sealing:
                opened = replace(opened, eraser=eraser or await _open_eraser(settings, stack))
            app.state.backends = bounded(by_tenant(opened, ring.tenants))
            log.info("runwire API: serving %d API key(s)", len(ring))
            try:
                yield
            finally:
                app.state.backends = None

    app = FastAPI(
        title="runwire",
        version=__version__,
        summary="Runs, sessions and live transcripts of AI-agent conversations",
        lifespan=lifespan,
    )
    app.state.keys = ring
    app.state.page_tokens = PageTokenSigner.of(settings.api_page_secret)
    app.state.backends = None
    # `runwire serve api` passes the process registry's (one /metrics for all);
    # an app of its own otherwise, so two apps in one process do not collide.
    app.state.metrics = metrics = metrics if metrics is not None else ApiMetrics()
    app.state.closing = asyncio.Event()
    install_error_handlers(app)
    routers = [
        routes_me.router,
        routes_sessions.router,
        routes_runs.router,
        routes_events.router,
        routes_usage.router,
        routes_ops.router,
        routes_web.router,
    ]
    for router in routers:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=routes_web.STATIC_DIR), name="static")
    _declare_errors(app)
    # Added innermost first: the metrics see every answer, the key check comes before the body.
    app.add_middleware(BodyLimit, max_bytes=opts.max_body_bytes, timeout=opts.body_timeout)
    app.add_middleware(KeyGate, keys=ring)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def error_statuses(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    """The error statuses an operation of the OpenAPI document can answer with.

    Every operation under ``/v1``: 401 (checked first), 404, 413, 422 and 503;
    one with a body or a ``page`` token also 400, one with a body 408; a write
    also 403 and 409.
    Outside ``/v1`` (health, metrics): 503.
    """
    statuses = {503}
    if path.startswith(GUARDED_PREFIX + "/"):
        statuses |= {401, 404, 413, 422}
        queries = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
        if "requestBody" in operation or "page" in queries:
            statuses.add(400)
        if "requestBody" in operation:
            statuses.add(408)
        if method.upper() in ("POST", "PUT", "PATCH", "DELETE"):
            statuses |= {403, 409}
    return sorted(statuses)


def _declare_errors(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI document declare each operation's errors
    (:func:`error_statuses`) with the body :class:`ErrorBody`, in place of
    FastAPI's own 422 body, which this API never sends."""
    build = app.openapi

    def document() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        built = build()
        schemas = built.setdefault("components", {}).setdefault("schemas", {})
        body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(body.pop("$defs", {}))
        schemas["ErrorBody"] = body
        ref = {"$ref": "#/components/schemas/ErrorBody"}
        for path, item in built["paths"].items():
            for method, operation in item.items():
                for status in error_statuses(path, method, operation):
                    operation["responses"][str(status)] = {
                        "description": ERROR_DESCRIPTIONS[status],
                        "content": {"application/json": {"schema": ref}},
                    }
        if "HTTPValidationError" not in json.dumps(built["paths"]):
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
        return built

    app.openapi = document  # type: ignore[method-assign]


def close_streams(app: FastAPI) -> None:
    """End every open event stream of ``app`` now (a server about to stop calls this,
    so that its graceful shutdown does not wait for streams that never end)."""
    app.state.closing.set()


async def _open_backends(
    settings: Settings,
    stack: contextlib.AsyncExitStack,
    runs: RunReader | None,
    sessions: SessionReader | None,
    transcripts: TranscriptReader | None,
    control: RunControl | None,
    usage: UsageSource | None,
    prices: PriceTable,
    options: Options,
) -> Backends:
    """Build and open what was not given; ``stack`` closes it."""
    store = None
    if runs is None or sessions is None or usage is None:
        from runwire.projections.runs.reader import RunStore
        from runwire.projections.runtime.pg import open_pool
        from runwire.projections.sessions.reader import SessionIndex

        pool = await open_pool(settings, max_size=POOL_SIZE, name="runwire-api")
        stack.push_async_callback(pool.close)
        if runs is None:
            store = RunStore(pool, settings)
            await store.prepare()
            runs = store
        if sessions is None:
            index = SessionIndex(pool, settings)
            await index.prepare()
            sessions = index
        if usage is None:
            from runwire.projections.usage.reader import UsageStore

            rollups = UsageStore(pool, settings)
            await rollups.prepare()
            usage = rollups
    if transcripts is None:
        import redis.asyncio as aioredis

        from runwire.projections.transcripts.reader import TranscriptCache

        # Bounded socket waits: a Redis that stops answering fails the read, not hangs it.
        redis = aioredis.Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=options.backend_timeout,
            socket_timeout=options.backend_timeout,
        )
        stack.push_async_callback(redis.aclose)
        transcripts = await stack.enter_async_context(
            TranscriptCache(settings, client=redis, runs=store)
        )
    if control is None:
        from runwire.client import Client
        from runwire.services.api.ports import ClientRunControl

        # The run-status store tells the client where a run starts and whose it is.
        client = await stack.enter_async_context(Client(settings, runs=store))
        control = ClientRunControl(client)
    return Backends(
        runs=runs,
        sessions=sessions,
        transcripts=transcripts,
        control=control,
        options=options,
        usage=usage,
        prices=prices,
    )


async def _open_eraser(settings: Settings, stack: contextlib.AsyncExitStack) -> SessionEraser:
    """Erasure through a log backend of its own (sealing on); ``stack`` closes it."""
    from runwire.sessions.log_backend import LogBackend

    # The routes check the caller owns the session; the eraser then reaches any
    # tenant's (the admin's readers; a tenant process's own tenant's).
    reach = settings if settings.tenant is not None else settings.model_copy(update={"admin": True})
    backend = await stack.enter_async_context(LogBackend(reach))
    return LogSessionEraser(backend)
