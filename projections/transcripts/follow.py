"""Where a run begins in the log, for tailing it (``runwire transcript RUN_ID --follow``).

:func:`find_start` asks the transcript cache, then the run-status store;
the tail itself is :func:`runwire.log.watcher.follow_run`.
"""

from __future__ import annotations

from runwire.projections.transcripts.miss import RunLocator
from runwire.projections.transcripts.store import Slot, TranscriptStore


async def find_start(
    run_id: str, store: TranscriptStore | None, locator: RunLocator | None
) -> tuple[int, int] | None:
    """The run's (partition, first offset) if the cache or the run-status store knows it."""
    if store is not None:
        generation = await store.generation(Slot.LIVE)
        assert generation is not None
        meta = (await store.heads(generation, [run_id]))[run_id].meta
        if meta is not None:
            return meta.partition, meta.first
    if locator is not None:
        location = await locator.locate(run_id)
        if location is not None:
            return location.partition, location.first_offset
    return None
