"""A projection as a long-running service (``runwire serve projector-NAME``).

Contract:
- Opens the projection from the catalog (its pool / client, migrations),
  runs its :class:`Projector` until ``stop`` is set, then stops cleanly.
- ``instance_id`` makes the process a static member of the projection's
  consumer group: restarted with the same id after a crash it gets its
  partitions back at once, without waiting for the session timeout.
- Calls ``on_caught_up`` once, the first time every assigned partition's
  stored position reaches the log end (supervisors and tests wait for it).
- Registers its probes (:mod:`runwire.telemetry.health`) while it runs:
  ready once it has caught up (as for ``on_caught_up``) while its loop runs;
  its lag is the log end minus the positions stored with the rows.
- The process's collector is tuned for batches (:mod:`.tuning`).
- A fatal error of the projector (not a transient one, which it retries)
  ends the service with that error.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable

from runwire.log import hooks
from runwire.projections.catalog import opener
from runwire.projections.runtime.consumer import Projector, ProjectorOptions
from runwire.projections.runtime.tuning import tune_for_batches
from runwire.settings import Settings
from runwire.telemetry import health

PROJECTOR_PREFIX = "projector-"


async def serve_projection(
    name: str,
    settings: Settings,
    stop: asyncio.Event,
    *,
    instance_id: str | None = None,
    options: ProjectorOptions | None = None,
    on_caught_up: Callable[[], None] | None = None,
) -> None:
    """Run projection ``name`` (catalog name, e.g. ``runs``) until ``stop`` is set."""
    options = dataclasses.replace(options or ProjectorOptions(), group_instance_id=instance_id)
    async with (
        opener(name)(settings) as projection,
        Projector(projection, settings, options=options) as projector,
    ):
        tune_for_batches()
        runner = asyncio.create_task(_reading(projector), name=f"projector-{name}")
        caught_up = asyncio.Event()

        def announce() -> None:
            caught_up.set()
            if on_caught_up is not None:
                on_caught_up()

        watcher = asyncio.create_task(_announce(projector, announce))
        stopper = asyncio.create_task(stop.wait())
        probe = health.register(_probe(name, projector, runner, caught_up))
        try:
            await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            health.unregister(probe)
            watcher.cancel()
            stopper.cancel()
            await projector.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await runner  # re-raises a fatal error of the projector


def _probe(
    name: str, projector: Projector, runner: asyncio.Task[None], caught_up: asyncio.Event
) -> health.Probe:
    group = projector.group_id or f"projector-{name}"

    def alive() -> str | None:
        return "the projector's loop ended" if runner.done() else None

    def ready() -> str | None:
        if runner.done():
            return "the projector's loop ended"
        return None if caught_up.is_set() else "catching up with the log"

    async def lag() -> dict[tuple[str, str, int], int]:
        return {(group, tp.topic, tp.partition): n for tp, n in (await projector.lag()).items()}

    return health.Probe(f"projector-{name}", ready, alive, lag)


async def _reading(projector: Projector) -> None:
    # The task's own context: the hooks see which consumer read a record.
    hooks.reader.set(projector.group_id or f"projector-{projector.projection.name}")
    await projector.run()


async def _announce(projector: Projector, on_caught_up: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(0.2)
        if projector.assigned() and not any((await projector.lag()).values()):
            on_caught_up()
            return
