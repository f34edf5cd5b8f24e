"""Rebuilding the transcript cache beside the live one.

A rebuild fills a new generation (keys ``<prefix>:tx:<n>:...``) from offset 0
with a projection pinned to it, while readers and the live projector keep
using the live generation. :meth:`TranscriptRebuild.try_switch` flips the
``live`` pointer in one script once the copy has caught up on every
partition, then drops the old generation. Readers resolve the pointer on
every read, so they move over at once; a live projector's next batch finds
its positions in the new generation (at or past its own) and goes on there,
and a write computed against the old generation fails its generation guard
and is redone against the new one.

The runtime's rebuild runner drives this object through the
:class:`~runwire.projections.runtime.protocol.Rebuild` protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runwire.projections.runtime.generations import ProjectionError
from runwire.projections.transcripts.store import Slot

if TYPE_CHECKING:
    from runwire.projections.transcripts.projection import TranscriptProjection


class TranscriptRebuild:
    """A generation being built; see the module docstring."""

    def __init__(self, live: TranscriptProjection, generation: int) -> None:
        self._live = live
        self._generation = generation
        self._projection = live.pinned(generation)

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def projection(self) -> TranscriptProjection:
        return self._projection

    async def try_switch(self) -> bool:
        store = self._live.store
        building = await store.generation(Slot.BUILDING)
        if building != self._generation:
            live = await store.generation(Slot.LIVE)
            if live == self._generation:
                return True  # switched already (a retried call)
            raise ProjectionError(
                f"rebuild of the transcript cache into generation {self._generation} was "
                f"abandoned (building is now {building}, live {live})"
            )
        old = await store.switch(self._generation)
        if old is None:
            return False
        await store.drop_generation(old)
        return True

    async def discard(self) -> None:
        store = self._live.store
        if await store.generation(Slot.LIVE) == self._generation:
            raise ProjectionError(f"generation {self._generation} of the transcript cache is live")
        if await store.generation(Slot.BUILDING) == self._generation:
            await store.abandon(self._generation)
        await store.drop_generation(self._generation)
