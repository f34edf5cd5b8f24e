"""A projection as a long-running service (``runwire serve projector-NAME``).

Contract:
- Opens the projection from the catalog (its pool / client, migrations),
  runs its :class:`Projector` until ``stop`` is set, then stops cleanly.
- ``instance_id`` makes the process a static member of the projection's
  consumer group: restarted with the same id after a crash it gets its
  partitions back at once, without waiting for the session timeout.
- Calls ``on_caught_up`` once, the first time every assigned partition's
  stored position reaches the log end (supervisors and tests wait for it).
- The process's collector is tuned for batches (:mod:`.tuning`).
- A fatal error of the projector (not a transient one, which it retries)
  ends the service with that error.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable

from runwire.projections.catalog import opener
from runwire.projections.runtime.consumer import Projector, ProjectorOptions
from runwire.projections.runtime.tuning import tune_for_batches
from runwire.settings import Settings

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
        runner = asyncio.create_task(projector.run(), name=f"projector-{name}")
        watcher = asyncio.create_task(_announce(projector, on_caught_up))
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            stopper.cancel()
            await projector.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await runner  # re-raises a fatal error of the projector


async def _announce(projector: Projector, on_caught_up: Callable[[], None] | None) -> None:
    if on_caught_up is None:
        return
    while True:
        await asyncio.sleep(0.2)
        if projector.assigned() and not any((await projector.lag()).values()):
            on_caught_up()
            return
