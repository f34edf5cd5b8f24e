"""The one place the HTTP API is wired: ``create_app(settings, ...)``.

Every dependency may be passed in (unit tests pass in-memory twins); the
ones left out are built from ``settings`` when the app starts (its lifespan)
and closed when it stops, in reverse order:

- one Postgres pool shared by the run-status store and the session index
  (their tables are created if no projector has yet);
- the transcript cache on Redis, whose miss path finds runs in that store;
- a runs-API client (publisher + one log reader shared by every event stream).

The API keys come from ``settings.api_keys`` unless ``keys`` is given; an
app without keys is refused at once (it could answer nothing but 401).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from runwire import __version__
from runwire.services.api import (
    routes_events,
    routes_me,
    routes_ops,
    routes_runs,
    routes_sessions,
    routes_web,
)
from runwire.services.api.auth import KeyRing
from runwire.services.api.backends import Backends, Options
from runwire.services.api.errors import install_error_handlers
from runwire.services.api.metrics import ApiMetrics, MetricsMiddleware
from runwire.services.api.ports import RunControl, RunReader, SessionReader, TranscriptReader
from runwire.settings import Settings

__all__ = ["close_streams", "create_app"]

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
    options: Options | None = None,
) -> FastAPI:
    """The API app; its backends open with its lifespan (see the module docstring)."""
    ring = keys if keys is not None else KeyRing.from_settings(settings)
    opts = options if options is not None else Options()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            app.state.backends = await _open_backends(
                settings, stack, runs, sessions, transcripts, control, opts
            )
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
    app.state.backends = None
    app.state.metrics = metrics = ApiMetrics()
    app.state.closing = asyncio.Event()
    install_error_handlers(app)
    app.include_router(routes_me.router)
    app.include_router(routes_sessions.router)
    app.include_router(routes_runs.router)
    app.include_router(routes_events.router)
    app.include_router(routes_ops.router)
    app.include_router(routes_web.router)
    app.mount("/static", StaticFiles(directory=routes_web.STATIC_DIR), name="static")
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


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
    options: Options,
) -> Backends:
    """Build and open what was not given; ``stack`` closes it."""
    store = None
    if runs is None or sessions is None:
        from runwire.projections.runs.store import RunStore
        from runwire.projections.runtime.pg import open_pool
        from runwire.projections.sessions.store import SessionIndex

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
    if transcripts is None:
        from runwire.projections.transcripts.miss import RunStoreLocator
        from runwire.projections.transcripts.reader import TranscriptCache

        locator = RunStoreLocator(store) if store is not None else None
        transcripts = await stack.enter_async_context(TranscriptCache(settings, locator=locator))
    if control is None:
        from runwire.client import Client
        from runwire.services.api.ports import ClientRunControl

        client = await stack.enter_async_context(Client(settings))
        control = ClientRunControl(client)
    return Backends(
        runs=runs, sessions=sessions, transcripts=transcripts, control=control, options=options
    )
