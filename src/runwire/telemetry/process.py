"""Telemetry for one ``runwire serve`` process: tracing from ``OTEL_*``, metrics on a port.

Contract:
- ``async with observed(name, settings):`` switches tracing on when the
  environment asks for it (:func:`runwire.telemetry.tracing.configure`)
  and, when ``settings.metrics_port`` is set (``RUNWIRE_METRICS_PORT`` or
  ``runwire serve NAME --metrics-port``), counts every record
  (:class:`~runwire.telemetry.metrics.MetricsHook`) and serves ``/metrics``,
  ``/healthz`` and ``/readyz`` on ``settings.metrics_host`` and that port.
- With neither, it installs no hook and imports nothing of OpenTelemetry.
- Either way it sets the garbage collector for a long-lived process
  (:func:`runwire.telemetry.gc_tuning.tune`: what start-up made frozen,
  higher thresholds), and undoes it on exit.
- On exit the server stops, the hooks are removed and the spans still
  queued are flushed, waiting at most ``flush_timeout`` seconds (a backend
  that is down does not hold up the process's exit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable

from runwire.log import hooks
from runwire.settings import Settings
from runwire.telemetry import gc_tuning, tracing
from runwire.telemetry.metrics import MetricsHook
from runwire.telemetry.server import MetricsServer

__all__ = ["observed"]

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def observed(
    name: str, settings: Settings, *, flush_timeout: float = 5.0
) -> AsyncIterator[MetricsServer | None]:
    """See the module contract; yields the metrics server (None without a port)."""
    traced = tracing.configure(name)
    gc_tuning.tune()
    counter: MetricsHook | None = None
    server: MetricsServer | None = None
    try:
        if settings.metrics_port is not None:
            counter = MetricsHook()
            hooks.install(counter)
            server = MetricsServer(settings.metrics_host, settings.metrics_port)
            await server.start()
            log.info(
                "%s: metrics on http://%s:%d/metrics", name, settings.metrics_host, server.port
            )
        yield server
    finally:
        gc_tuning.untune()
        if server is not None:
            await server.stop()
        if counter is not None:
            hooks.uninstall(counter)
        if traced:
            active = tracing.disable()
            if active is not None:
                await _flush(name, active.shutdown, flush_timeout)


async def _flush(name: str, shutdown: Callable[[], None], timeout: float) -> None:  # noqa: ASYNC109
    # A daemon thread, not the loop's executor: an exporter stuck on a dead
    # backend must not hold up the interpreter's exit either.
    done = threading.Event()

    def run() -> None:
        try:
            shutdown()
        finally:
            done.set()

    threading.Thread(target=run, name="runwire-trace-flush", daemon=True).start()
    deadline = time.monotonic() + timeout
    while not done.is_set():
        if time.monotonic() >= deadline:
            log.warning("%s: spans not flushed within %.0fs; dropped", name, timeout)
            return
        await asyncio.sleep(0.05)
