"""``runwire serve NAME``: run one long-lived service in this process.

``projector-NAME`` runs projection NAME of the catalog
(:mod:`runwire.projections.catalog`: ``projector-runs``,
``projector-sessions``, ...); ``orchestrator`` and ``tools`` run those
services. Every service stops cleanly on SIGTERM / SIGINT and prints
``<name> caught up`` once it has read every assigned partition to its end.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

import typer

from runwire.cli.common import fail_on_runwire_error
from runwire.errors import ConfigurationError
from runwire.settings import Settings

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
    from runwire.projections.runtime.service import PROJECTOR_PREFIX, serve_projection

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
) -> None:
    """Run a service until SIGTERM / SIGINT."""
    known = services()
    with fail_on_runwire_error():
        if name not in known:
            raise ConfigurationError(
                f"no service named {name!r} (known: {', '.join(sorted(known))})"
            )
        logging.basicConfig(
            level=log_level.upper(),
            format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        logging.getLogger("aiokafka").setLevel(logging.WARNING)

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            given = {"api_host": host, "api_port": port}
            settings = Settings().model_copy(
                update={k: v for k, v in given.items() if v is not None}
            )
            await known[name](name, settings, stop, instance_id, max_records)

        asyncio.run(main())
