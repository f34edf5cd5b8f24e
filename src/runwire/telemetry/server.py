"""``/metrics``, ``/healthz`` and ``/readyz`` of one process, on its own port.

Contract:
- ``async with MetricsServer(host, port)`` listens (port 0: any free port,
  see :attr:`MetricsServer.port`) until the block ends.
- ``GET /metrics``: the lag gauges refreshed (:func:`runwire.telemetry.health.refresh_lag`),
  then the process registry in Prometheus's text format.
- ``GET /healthz``: 200 while every probe is alive, else 503 with the
  reasons; ``GET /readyz``: 200 once every probe is ready (connected and
  caught up), else 503 with the reasons. Bodies are JSON.
- Anything else is 404, a method other than GET or HEAD 405. The server
  speaks just enough HTTP/1.1 for Prometheus, Kubernetes and curl (one
  request per connection); a slow or broken client never holds up another.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from runwire.lifecycle import AsyncService
from runwire.telemetry import health
from runwire.telemetry.metrics import REGISTRY

__all__ = ["MetricsServer"]

log = logging.getLogger(__name__)

_READ_TIMEOUT = 10.0
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class MetricsServer(AsyncService):
    """See the module contract."""

    def __init__(self, host: str = "0.0.0.0", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "the metrics server is not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT):
                request = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # headers: nothing here depends on them
            parts = request.decode("latin-1").split()
            method, path = (parts[0], parts[1]) if len(parts) >= 2 else ("", "")
            status, content_type, body = await self._answer(method, path.split("?", 1)[0])
            head = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
                f"Content-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeDecodeError) as e:
            log.debug("metrics server: a request was dropped: %s", e)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, method: str, path: str) -> tuple[int, str, bytes]:
        if path not in ("/metrics", "/healthz", "/readyz"):
            return 404, "application/json", b'{"error": "not found"}'
        if method not in ("GET", "HEAD"):
            return 405, "application/json", b'{"error": "only GET and HEAD"}'
        if path == "/metrics":
            await health.refresh_lag()
            return 200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY)
        answers = health.ready() if path == "/readyz" else health.alive()
        failing = {name: why for name, why in answers.items() if why is not None}
        if not answers:
            failing = {"process": "no service has started yet"}
        status = 503 if failing else 200
        body: dict[str, object] = {
            "status": "ok" if not failing else "unavailable",
            "services": answers,
        }
        if failing:
            body["failing"] = failing
        return status, "application/json", json.dumps(body).encode()
