"""Serving the API over HTTP with uvicorn (``runwire serve api``, and tests).

Contract:
- :class:`ApiServer` binds its socket when made (``port=0`` picks a free
  port; ``url`` says where). It is an async context manager: on entry the
  app's lifespan has run (its backends are open; a failure to open them is
  raised here) and the socket accepts connections. On exit, or ``stop()``
  (idempotent), open event streams are ended (clients reconnect with their
  last event id), other requests get ``grace`` seconds, and the backends
  close.
- A connection waits at most ``head_timeout`` seconds (by default the app's
  ``Options.body_timeout``, its bound on slow clients) for each request head,
  counted from when it began to wait: from its opening, and from the end of
  each response. A client that sends nothing, or part of a head and then
  stops, is disconnected then (no answer: there is no request to answer).
  uvicorn's h11 protocol starts no timer before a connection's first
  request and stops its keep-alive timer at the first byte of the next, so
  without this a few thousand idle sockets would hold the server. Once a
  head has arrived the bound is no longer this one: the body has
  ``body_timeout`` from its first read (``limits.py``), and a response,
  such as an event stream, may last as long as it likes. An idle kept-alive
  connection still closes after uvicorn's keep-alive (5 s) when that is
  sooner.
- :func:`serve_api` runs it until an event is set (``runwire serve api``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Self

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from runwire.errors import RunwireError
from runwire.services.api.app import close_streams
from runwire.services.api.backends import Options
from runwire.services.api.limits import BodyLimit

__all__ = ["ApiServer", "serve_api"]


class _Config(uvicorn.Config):
    """uvicorn's config and the deadline of a request head (for :class:`_H11`)."""

    def __init__(self, app: FastAPI, *, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, http=_H11, **kwargs)
        self.head_timeout = head_timeout


class _H11(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request head (the module
    contract): armed when the connection opens and when a response ends, stopped
    only when a whole head has arrived, whatever bytes come before."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head_timeout = (
            config.head_timeout if isinstance(config, _Config) else Options().body_timeout
        )
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self._head_timer is not None and self._in_request():
            self._stop_head_timer()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        # The head has arrived, and the connection is the WebSocket protocol's from now on.
        self._stop_head_timer()
        super().handle_websocket_upgrade(event)

    def on_response_complete(self) -> None:
        # Armed before uvicorn parses a pipelined head (handle_events stops it then).
        if not self.transport.is_closing():
            self._await_head()
        super().on_response_complete()

    def _in_request(self) -> bool:
        """True from the arrival of a request's head to the end of its response."""
        return self.cycle is not None and not self.cycle.response_complete

    def _await_head(self) -> None:
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(self._head_timeout, self._head_overdue)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_overdue(self) -> None:
        self._head_timer = None
        if self._in_request() or self.transport.is_closing():
            return
        with contextlib.suppress(h11.LocalProtocolError):
            self.conn.send(h11.ConnectionClosed())
        self.transport.close()


def _body_timeout(app: FastAPI) -> float:
    """The app's bound on slow clients: the ``Options.body_timeout`` its body limit
    was given (``create_app`` adds :class:`~.limits.BodyLimit` with it)."""
    for middleware in app.user_middleware:
        factory: object = middleware.cls
        timeout = middleware.kwargs.get("timeout")
        if factory is BodyLimit and isinstance(timeout, int | float):
            return float(timeout)
    return Options().body_timeout


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: it would take SIGINT/SIGTERM of the whole
    process; whoever runs the server decides about signals (``runwire serve``, a test)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    """``app`` served by uvicorn on ``host:port`` inside the running event loop;
    ``head_timeout`` (None: the app's ``body_timeout``) bounds the wait for a
    request head (the module contract)."""

    def __init__(
        self,
        app: FastAPI,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        grace: float = 5.0,
        log_level: str = "warning",
        head_timeout: float | None = None,
    ) -> None:
        # IPPROTO_TCP, not the default 0: accepted sockets inherit the protocol, and asyncio
        # sets TCP_NODELAY only on sockets that say they are TCP. Without it each response
        # after the first on a kept-alive connection waited ~40 ms (Nagle + delayed ACK).
        self._socket = socket.socket(
            socket.AF_INET6 if ":" in host else socket.AF_INET,
            socket.SOCK_STREAM,
            socket.IPPROTO_TCP,
        )
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
        except OSError as e:
            self._socket.close()
            raise RunwireError(f"cannot listen on {host}:{port}: {e.strerror}") from e
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        # The lifespan is run here, not by uvicorn: uvicorn answers a failed
        # startup with sys.exit, which would take the caller's loop down with it.
        config = _Config(
            app,
            head_timeout=head_timeout if head_timeout is not None else _body_timeout(app),
            log_level=log_level,
            lifespan="off",
            timeout_graceful_shutdown=max(1, round(grace)),
            access_log=False,
        )
        self._app = app
        self._lifespan: contextlib.AbstractAsyncContextManager[Any] | None = None
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        if self._task is not None:
            return
        lifespan = self._app.router.lifespan_context(self._app)
        await lifespan.__aenter__()
        self._lifespan = lifespan
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._task.done():
                await self.stop()
                raise RunwireError(f"the API server did not start on {self.url}")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop serving and close the backends (idempotent)."""
        task, self._task = self._task, None
        try:
            if task is not None:
                close_streams(self._app)
                self._server.should_exit = True
                await task
        finally:
            self._socket.close()
            lifespan, self._lifespan = self._lifespan, None
            if lifespan is not None:
                await lifespan.__aexit__(None, None, None)

    async def wait(self) -> None:
        """Until the server stops by itself (cancelling this wait does not stop it)."""
        if self._task is not None:
            await asyncio.wait({self._task})

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def serve_api(
    app: FastAPI, *, host: str, port: int, stop: asyncio.Event, ready: str | None = None
) -> None:
    """Serve ``app`` until ``stop`` is set; prints ``ready`` (``{url}`` filled in) once listening."""
    async with ApiServer(app, host=host, port=port, log_level="info") as server:
        if ready is not None:
            print(ready.format(url=server.url), flush=True)
        stopper = asyncio.ensure_future(stop.wait())
        waiter = asyncio.ensure_future(server.wait())
        await asyncio.wait({stopper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        waiter.cancel()
