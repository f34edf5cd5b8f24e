"""The store-independent steps of :meth:`Projection.apply`, shared by every implementation.

Each store wraps these in its own atomic write: it reads the stored
positions (locked), calls :func:`fresh_records`, looks up which remembered
event ids it has applied, calls :func:`drop_duplicates`, folds, then stores
what :func:`next_positions` says, all or nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from runwire.contract.events import SessionDeleted
from runwire.log.records import SourceRecord, TopicPartition
from runwire.projections.runtime.protocol import ApplyResult, Batch, Rejection


@dataclass(frozen=True, slots=True)
class Fresh:
    """The records of a batch still to apply, and the partitions to leave alone."""

    records: list[SourceRecord]
    moved: frozenset[TopicPartition]
    """Partitions whose stored position is below the runner's expectation (store switched)."""
    skipped: int


def fresh_records(batch: Batch, stored: Mapping[TopicPartition, int]) -> Fresh:
    """Drop records below their partition's stored position, and partitions that moved back."""
    moved = frozenset(tp for tp, pos in stored.items() if pos < batch.expected.get(tp, 0))
    kept: list[SourceRecord] = []
    skipped = 0
    for record in batch.records:
        tp = record.tp
        if tp in moved or record.offset < stored.get(tp, 0):
            skipped += 1
        else:
            kept.append(record)
    return Fresh(records=kept, moved=moved, skipped=skipped)


def drop_duplicates(
    records: Sequence[SourceRecord],
    remember: Callable[[SourceRecord], bool],
    applied: Collection[str],
) -> tuple[list[SourceRecord], int]:
    """Records minus remembered events applied before (``applied``) or earlier in the batch."""
    seen = set(applied)
    kept: list[SourceRecord] = []
    duplicates = 0
    for record in records:
        if remember(record):
            if record.event.event_id in seen:
                duplicates += 1
                continue
            seen.add(record.event.event_id)
        kept.append(record)
    return kept, duplicates


def remembered_ids(
    records: Sequence[SourceRecord],
    rejections: Sequence[Rejection],
    remember: Callable[[SourceRecord], bool],
) -> list[str]:
    """Event ids to remember as applied: not rejected (so a redrive can still apply those)."""
    rejected = {(r.topic, r.partition, r.offset) for r in rejections}
    return [
        r.event.event_id
        for r in records
        if (r.topic, r.partition, r.offset) not in rejected and remember(r)
    ]


def next_positions(
    batch: Batch, stored: Mapping[TopicPartition, int], moved: Collection[TopicPartition]
) -> dict[TopicPartition, int]:
    """Positions to store: forward only, and none for partitions that moved back."""
    return {
        tp: max(stored.get(tp, 0), pos)
        for tp, pos in batch.next_positions.items()
        if tp not in moved
    }


def result(
    batch: Batch,
    stored: Mapping[TopicPartition, int],
    forward: Mapping[TopicPartition, int],
    fresh: Fresh,
    folded: int,
    duplicates: int,
    rejected: int,
) -> ApplyResult:
    """The :class:`ApplyResult` of a batch once its write is durable."""
    return ApplyResult(
        positions={tp: forward.get(tp, stored.get(tp, 0)) for tp in batch.next_positions},
        applied=folded - rejected,
        duplicates=duplicates,
        skipped=fresh.skipped,
        rejected=rejected,
    )


def deleted_session(record: SourceRecord) -> str | None:
    """The session a session-events record deletes (None: not a deletion to obey).

    A ``session_deleted`` whose record key is not its session id is none: the
    session index rejects (dead-letters) it, so the session stays, and so do
    its runs in every projection that erases them.
    """
    event = record.event
    if not isinstance(event.payload, SessionDeleted) or not event.session_id:
        return None
    if record.key != event.session_id.encode():
        return None
    return event.session_id
