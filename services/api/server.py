"""Serving the API over HTTP with uvicorn (``runwire serve api``, and tests).

Contract:
- :class:`ApiServer` binds its socket when made (``port=0`` picks a free
  port; ``url`` says where). It is an async context manager: on entry the
  app's lifespan has run (its backends are open; a failure to open them is
  raised here) and the socket accepts connections. On exit, or ``stop()``
  (idempotent), open event streams are ended (clients reconnect with their
  last event id), other requests get ``grace`` seconds, and the backends
  close.
- :func:`serve_api` runs it until an event is set (``runwire serve api``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Self

import uvicorn
from fastapi import FastAPI

from runwire.errors import RunwireError
from runwire.services.api.app import close_streams

__all__ = ["ApiServer", "serve_api"]


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: it would take SIGINT/SIGTERM of the whole
    process; whoever runs the server decides about signals (``runwire serve``, a test)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    """``app`` served by uvicorn on ``host:port`` inside the running event loop."""

    def __init__(
        self,
        app: FastAPI,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        grace: float = 5.0,
        log_level: str = "warning",
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
        config = uvicorn.Config(
            app,
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
