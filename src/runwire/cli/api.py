"""``runwire serve api [--host H] [--port P]``: the HTTP API and the web page.

:func:`api_service` has the signature every service of ``runwire serve``
has; the address comes from ``settings.api_host`` / ``api_port``
(``RUNWIRE_API_HOST`` / ``RUNWIRE_API_PORT``, or ``--host`` / ``--port``).
Its request metrics live on the process registry, so the API's ``/metrics``
and the ``--metrics-port`` one show the same collectors.
"""

from __future__ import annotations

import asyncio

from runwire.settings import Settings

__all__ = ["api_service"]


async def api_service(
    name: str,
    settings: Settings,
    stop: asyncio.Event,
    instance_id: str | None,
    max_records: int | None,
) -> None:
    """Serve the API until ``stop`` is set (``instance_id`` / ``max_records`` do not apply)."""
    from runwire.services.api.app import create_app
    from runwire.services.api.metrics import ApiMetrics
    from runwire.services.api.server import serve_api
    from runwire.telemetry import health
    from runwire.telemetry.metrics import REGISTRY

    app = create_app(settings, metrics=ApiMetrics(REGISTRY))
    probe = health.register(
        health.Probe(
            name,
            lambda: None if app.state.backends is not None else "the API's backends are not open",
        )
    )
    try:
        await serve_api(
            app,
            host=settings.api_host,
            port=settings.api_port,
            stop=stop,
            ready=f"{name} listening on {{url}} (web page: {{url}}/)",
        )
    finally:
        health.unregister(probe)
