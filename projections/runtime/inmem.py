"""The in-memory twin of a store-backed projection: the same contract, nothing running.

For unit tests (the contract suite runs against it too) and for checking a
fold against the reference without servers. A subclass keeps its rows in
``self.state`` and folds batches into it; this base keeps positions and
applied event ids and makes every batch atomic (the fold works on a copy
that replaces the state only once the dead letters are written).
"""

from __future__ import annotations

import asyncio
import copy
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from typing import Generic, TypeVar

from runwire.log.records import SourceRecord, TopicPartition
from runwire.projections.runtime import rules
from runwire.projections.runtime.protocol import ApplyResult, Batch, DeadLetterSink, Rejection

S = TypeVar("S")


class InMemoryProjection(ABC, Generic[S]):
    """A :class:`~runwire.projections.runtime.protocol.Projection` kept in this process."""

    def __init__(self, name: str, topics: Sequence[str], state: S) -> None:
        self._name = name
        self._topics = tuple(topics)
        self.state = state
        self.positions: dict[TopicPartition, int] = {}
        self.applied: dict[tuple[str, str], str | None] = {}
        """Remembered events: (event id, stream) -> body digest."""
        self._lock = asyncio.Lock()

    @abstractmethod
    def remember(self, record: SourceRecord) -> bool:
        """True when applying this event twice would change the state."""

    @abstractmethod
    def fold(self, state: S, records: Sequence[SourceRecord]) -> list[Rejection]:
        """Fold fresh records into ``state`` (a private copy); return those rejected."""

    @property
    def name(self) -> str:
        return self._name

    @property
    def topics(self) -> tuple[str, ...]:
        return self._topics

    async def load_positions(
        self, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, int]:
        return {tp: self.positions.get(tp, 0) for tp in partitions}

    async def apply(self, batch: Batch, dead_letters: DeadLetterSink) -> ApplyResult:
        async with self._lock:
            stored = {tp: self.positions.get(tp, 0) for tp in batch.next_positions}
            fresh = rules.fresh_records(batch, stored)
            sorted_out = rules.sort_out(fresh.records, self.remember, self.applied)
            records = sorted_out.kept
            state = copy.deepcopy(self.state)
            folded = self.fold(state, records) if records else []
            rejections = sorted_out.conflicts + folded
            await dead_letters.send(rejections)
            # The "commit": state, applied ids and positions change together.
            self.state = state
            self.applied.update(rules.remembered(sorted_out, folded))
            forward = rules.next_positions(batch, stored, fresh.moved)
            self.positions.update(forward)
        return rules.result(batch, stored, forward, fresh, sorted_out, len(rejections))
