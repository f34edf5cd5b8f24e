"""``runwire serve NAME``: run one long-lived service in this process.

``projector-NAME`` runs projection NAME of the catalog
(:mod:`runwire.projections.catalog`: ``projector-runs``,
``projector-sessions``, ...); ``orchestrator`` and ``tools`` run those
services. Every service stops cleanly on SIGTERM / SIGINT and prints
``<name> caught up`` once it has read every assigned partition to its end.

With ``--metrics-port`` (or ``RUNWIRE_METRICS_PORT``) the process serves
``/metrics``, ``/healthz`` and ``/readyz``; the ``OTEL_*`` variables switch
tracing on (:mod:`runwire.telemetry.process`).

Every service runs under :func:`runwire.services.lifecycle.run_until_stopped`:
when one of its loops dies, the process ends with one line on stderr
(``runwire: error: NAME: ... died: ...``) and exit code 1. Logging is
:func:`runwire.logs.configure_service_logging` (aiokafka's connection errors
summarised while Kafka is unreachable).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import typer

from runwire.cli.common import fail_on_runwire_error
from runwire.errors import ConfigurationError
from runwire.logs import configure_service_logging
from runwire.services.lifecycle import run_until_stopped
from runwire.settings import Settings
from runwire.telemetry.process import observed

Service = Callable[[str, Settings, asyncio.Event, str | None, int | None], Awaitable[None]]


def _announce(name: str) -> Callable[[], None]:
    return lambda: print(f"{name} caught up", flush=True)


async def _projector(
    name: str,
    settings: Settings,
    stop: asyncio.Event,
    instance_id: str | None,
    max_records: int | None,
) -> None:
    import dataclasses

    from runwire.projections.runtime.consumer import ProjectorOptions
    from runwire.projections.serve import PROJECTOR_PREFIX, serve_projection

    options = ProjectorOptions()
    if max_records:
        options = dataclasses.replace(options, max_records=max_records)
    await serve_projection(
        name.removeprefix(PROJECTOR_PREFIX),
        settings,
        stop,
        instance_id=instance_id,
        options=options,
        on_caught_up=_announce(name),
    )


async def _service(
    name: str,
    settings: Settings,
    stop: asyncio.Event,
    instance_id: str | None,
    max_records: int | None,
) -> None:
    from runwire.services.process import serve

    await serve(name, settings, stop, instance_id=instance_id, max_records=max_records)  # type: ignore[arg-type]


def services() -> dict[str, Service]:
    """Every name ``runwire serve`` knows."""
    from runwire.projections.catalog import CATALOG

    found: dict[str, Service] = {f"projector-{name}": _projector for name in CATALOG}
    found["orchestrator"] = _service
    found["tools"] = _service
    from runwire.services.orchestrator.watchdog import serve_watchdog

    found["watchdog"] = serve_watchdog
    from runwire.cli.api import api_service

    found["api"] = api_service
    return found


def serve(
    name: str = typer.Argument(
        ..., help="projector-runs | projector-sessions | ... | orchestrator | tools | api"
    ),
    instance_id: str | None = typer.Option(
        None, "--instance-id", help="Static consumer-group member id (fast restarts)."
    ),
    max_records: int | None = typer.Option(None, help="Records per fetch."),
    log_level: str = typer.Option("INFO", help="Logging level."),
    host: str | None = typer.Option(None, help="Address the API listens on (api)."),
    port: int | None = typer.Option(None, help="Port the API listens on (api)."),
    metrics_port: int | None = typer.Option(
        None,
        "--metrics-port",
        help="Serve /metrics, /healthz and /readyz on this port (RUNWIRE_METRICS_PORT).",
    ),
    agents: Path | None = typer.Option(
        None,
        "--agents",
        help="Agents file (TOML) for orchestrator and tools (RUNWIRE_AGENTS_FILE).",
    ),
) -> None:
    """Run a service until SIGTERM / SIGINT."""
    known = services()
    with fail_on_runwire_error():
        if name not in known:
            raise ConfigurationError(
                f"no service named {name!r} (known: {', '.join(sorted(known))})"
            )
        configure_service_logging(name, log_level)
        service = known[name]

        async def main() -> None:
            given = {
                "api_host": host,
                "api_port": port,
                "metrics_port": metrics_port,
                "agents_file": agents,
            }
            settings = Settings().model_copy(
                update={k: v for k, v in given.items() if v is not None}
            )
            async with observed(name, settings):
                await run_until_stopped(
                    name, lambda stop: service(name, settings, stop, instance_id, max_records)
                )

        asyncio.run(main())
