"""A TCP proxy a test can cut and restore: an outage of one server for one client.

``async with FaultProxy(host, port) as proxy:`` listens on ``127.0.0.1`` (a
free port, :attr:`FaultProxy.port`) and forwards every connection to
``host:port``. Give only the client under test an address through it
(:meth:`FaultProxy.url` rewrites a DSN or URL), so the shared server itself
never goes down and other tests never notice.

- :meth:`FaultProxy.cut` closes every forwarded connection at once (both
  sides) and, until :meth:`FaultProxy.restore`, closes each new connection
  as soon as it is accepted: the client sees its connections drop and every
  reconnection fail, as when the server is down.
- :meth:`FaultProxy.restore` forwards new connections again (the dropped
  ones stay dropped, as after a server restart).
- ``accepted`` / ``refused`` count the connections forwarded and turned away,
  so a test can show that its client really met the outage.
- ``start()`` / ``stop()`` (idempotent) or ``async with``; ``stop`` closes
  every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from urllib.parse import urlsplit, urlunsplit

from runwire.services.lifecycle import AsyncService

__all__ = ["FaultProxy"]

_CHUNK = 65536


class FaultProxy(AsyncService):
    """Forwards 127.0.0.1:<port> to ``host:port`` until cut; see the module contract."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.accepted = 0
        self.refused = 0
        self._server: asyncio.Server | None = None
        self._cut = False
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def to(cls, url: str) -> FaultProxy:
        """A proxy to the host and port of ``url`` (a DSN or a redis:// URL)."""
        parts = urlsplit(url)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"{url!r} names no host and port to proxy")
        return cls(parts.hostname, parts.port)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def url(self, url: str) -> str:
        """``url`` with its host and port replaced by the proxy's (user, path, query kept)."""
        parts = urlsplit(url)
        user = parts.netloc.rpartition("@")[0]
        netloc = f"{user}@127.0.0.1:{self.port}" if user else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    @property
    def is_cut(self) -> bool:
        return self._cut

    def cut(self) -> None:
        """Drop every forwarded connection and turn new ones away until :meth:`restore`."""
        self._cut = True
        for client, server in list(self._links):
            _drop(client)
            _drop(server)
        self._links.clear()

    def restore(self) -> None:
        """Forward new connections again."""
        self._cut = False

    async def start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self._cut:
                self.refused += 1
                _drop(writer)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                self.refused += 1
                _drop(writer)
                return
            if self._cut:  # cut while connecting
                self.refused += 1
                _drop(writer)
                _drop(up_writer)
                return
            self.accepted += 1
            link = (writer, up_writer)
            self._links.add(link)
            try:
                await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
            finally:
                self._links.discard(link)
                _drop(writer)
                _drop(up_writer)
        finally:
            self._tasks.discard(task)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes until either side closes; then close the writing side too."""
    with contextlib.suppress(OSError):
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    _drop(writer)


def _drop(writer: asyncio.StreamWriter) -> None:
    """Close at once, with a reset (the peer sees the connection fail, not a clean end)."""
    transport = writer.transport
    if transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
