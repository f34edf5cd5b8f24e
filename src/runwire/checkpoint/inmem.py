"""The in-memory twin of the checkpoint store: one process, no servers, for tests.

Events go through the same codec as on the log (so a value the log would
refuse, e.g. over ``max_event_bytes``, is refused here too) and are folded
by :class:`~runwire.projections.checkpoints.inmem.InMemoryCheckpoints` with
the projection's rules. Keeps :mod:`runwire.checkpoint.protocol`'s contract.
"""

from __future__ import annotations

from collections.abc import Sequence

from runwire.checkpoint.protocol import CheckpointRefusedError, check_events
from runwire.contract.codec import Codec
from runwire.contract.events import Event
from runwire.errors import DecodeError
from runwire.projections.checkpoints.inmem import InMemoryCheckpoints
from runwire.settings import Settings

__all__ = ["InMemoryCheckpointStore"]


class InMemoryCheckpointStore:
    """A :class:`~runwire.checkpoint.protocol.CheckpointStore` on dicts."""

    def __init__(self, codec: Codec | None = None) -> None:
        # The log's size limit too, so what the log would refuse fails here as well.
        self._codec = codec or Codec(max_event_bytes=Settings().max_event_bytes)
        self._model = InMemoryCheckpoints()
        self.log: list[Event] = []
        """Every event appended, in order (what the topic would hold)."""
        self.dead_letters: list[tuple[Event, str]] = []
        """Events the projection would dead-letter, with the reason."""

    @property
    def reader(self) -> InMemoryCheckpoints:
        return self._model

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def append(self, events: Sequence[Event]) -> None:
        decoded = [self._codec.decode(self._codec.encode(e)) for e in events]
        check_events(decoded)  # a bad payload fails the batch before any of it is applied
        refused: list[str] = []
        for event in decoded:
            self.log.append(event)
            try:
                self._model.apply(event)
            except DecodeError as e:  # what the projection dead-letters
                self.dead_letters.append((event, e.reason))
                refused.append(f"{event.event_id} ({e.reason}: {e})")
        if refused:  # written (the log keeps them), shown nowhere: as the log store says
            raise CheckpointRefusedError(
                f"checkpoint events dead-lettered by the read model: {', '.join(refused)}"
            )
