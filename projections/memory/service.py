"""Wiring of the memory projector: one place builds it from settings.

``serve`` runs the projector in its consumer group until cancelled or until
``stop`` is set (``python -m runwire.projections.memory.service``). Whoever
drives the memory projection must use
:class:`~runwire.projections.memory.fold.TombstoneDecoder` (as ``serve`` and
``rebuild_memory`` do): the memory topic's deletes are tombstones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from runwire.contract.codec import codec_for
from runwire.projections.memory.fold import TombstoneDecoder
from runwire.projections.memory.projection import MemoryProjection, memory_projector, open_memory
from runwire.projections.runtime.consumer import ProjectorOptions
from runwire.projections.runtime.rebuild import RebuildReport, rebuild
from runwire.settings import Settings

log = logging.getLogger(__name__)


async def serve(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    options: ProjectorOptions | None = None,
) -> None:
    """Run the memory projector until cancelled (or ``stop`` is set)."""
    async with (
        open_memory(settings) as projection,
        memory_projector(projection, settings, options=options) as projector,
    ):
        log.info(
            "projector %s: reading %s as group %s",
            projection.name,
            ", ".join(projection.topics),
            projector.group_id,
        )
        run = asyncio.create_task(projector.run())
        waits: list[asyncio.Task[object]] = [run]
        if stop is not None:
            waits.append(asyncio.create_task(stop.wait()))
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if run in done:
                run.result()
        finally:
            await projector.stop()
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)


async def rebuild_memory(settings: Settings, *, restart: bool = False) -> RebuildReport:
    """Rebuild the memory projection from offset 0 (with the tombstone decoder)."""
    async with open_memory(settings) as projection:
        assert isinstance(projection, MemoryProjection)
        decoder = TombstoneDecoder(codec_for(settings))
        return await rebuild(projection, settings, restart=restart, decoder=decoder)


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(Settings()))


if __name__ == "__main__":
    main()
