"""The store-independent steps of :meth:`Projection.apply`, shared by every implementation.

Each store wraps these in its own atomic write: it reads the stored
positions (locked), calls :func:`fresh_records`, looks up which remembered
events it has applied, calls :func:`sort_out` (duplicates dropped, conflicts
refused), folds, then stores the claims :func:`remembered` keeps and what
:func:`next_positions` says, all or nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from runwire.contract.events import SessionDeleted
from runwire.contract.identity import CONFLICTING_DUPLICATE, body_digest, stream_of
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
    # The offset a record must reach, by (topic, partition): the stored
    # position, or past every offset for a partition that moved back.
    floors = {(tp.topic, tp.partition): pos for tp, pos in stored.items() if pos > 0}
    floors.update({(tp.topic, tp.partition): _PAST_EVERY_OFFSET for tp in moved})
    records = batch.records
    if not floors:
        return Fresh(records=list(records), moved=moved, skipped=0)
    # record[:2] is (topic, partition): a slice, not a TopicPartition per record.
    kept = [r for r in records if r.offset >= floors.get(r[:2], 0)]
    return Fresh(records=kept, moved=moved, skipped=len(records) - len(kept))


_PAST_EVERY_OFFSET = 1 << 63


def same_positions(a: Mapping[TopicPartition, int], b: Mapping[TopicPartition, int]) -> bool:
    """True when ``a`` and ``b`` name the same position (0 when absent) for every partition,
    so :func:`fresh_records` gives the same records with either."""
    return all(b.get(tp, 0) == pos for tp, pos in a.items()) and all(
        a.get(tp, 0) == pos for tp, pos in b.items()
    )


Applied = Mapping[tuple[str, str], str | None]
"""Remembered events as stored: (event id, stream) -> body digest (None: not known).

Rows kept before streams were stored have the stream ``""`` and no digest:
such a row names its id in every stream and matches every body.
"""


@dataclass(slots=True)
class Sorted:
    """A batch's records sorted against the remembered events (see :func:`sort_out`)."""

    kept: list[SourceRecord]
    duplicates: int
    conflicts: list[Rejection]
    claims: dict[tuple[str, str], str]
    """(event id, stream) -> digest of every kept remembered record not stored before."""


def identity(record: SourceRecord) -> tuple[str, str]:
    """A record's event id within its stream (:mod:`runwire.contract.identity`)."""
    return record.event.event_id, stream_of(record.key)


def sort_out(
    records: Sequence[SourceRecord],
    remember: Callable[[SourceRecord], bool],
    applied: Applied,
) -> Sorted:
    """Records minus duplicates of remembered events (stored before or earlier in the
    batch), and the conflicts: an applied id in the same stream with another body."""
    out = Sorted(kept=[], duplicates=0, conflicts=[], claims={})
    for record in records:
        if not remember(record):
            out.kept.append(record)
            continue
        event = record.event
        key = record.key
        # identity(record), inline: this runs once per record of every batch.
        event_id, stream = ident = (event.event_id, key.decode("utf-8", "replace") if key else "")
        digest = body_digest(event)
        if ident in out.claims:
            stored: str | None = out.claims[ident]
            known = True
        elif ident in applied:
            stored, known = applied[ident], True
        elif (event_id, "") in applied:
            stored, known = applied[(event_id, "")], True
        else:
            stored, known = None, False
        if not known:
            out.claims[ident] = digest
            out.kept.append(record)
        elif stored is None or stored == digest:
            out.duplicates += 1
        else:
            out.conflicts.append(
                Rejection.of(
                    record,
                    CONFLICTING_DUPLICATE,
                    f"event {event_id} ({record.event.type.value}) was already applied in "
                    f"stream {stream!r:.80} with another body (digest {stored}, this one "
                    f"{digest}); the first is kept",
                    "ConflictingDuplicate",
                )
            )
    return out


def remembered(sorted_out: Sorted, rejections: Sequence[Rejection]) -> dict[tuple[str, str], str]:
    """Claims to keep: not rejected by the fold (so a redrive can still apply those)."""
    rejected = {(r.topic, r.partition, r.offset) for r in rejections}
    if not rejected:
        return sorted_out.claims
    out = dict(sorted_out.claims)
    for record in sorted_out.kept:
        if (record.topic, record.partition, record.offset) in rejected:
            out.pop(identity(record), None)
    return out


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
    sorted_out: Sorted,
    rejected: int,
) -> ApplyResult:
    """The :class:`ApplyResult` of a batch once its write is durable."""
    return ApplyResult(
        positions={tp: forward.get(tp, stored.get(tp, 0)) for tp in batch.next_positions},
        applied=len(sorted_out.kept) + len(sorted_out.conflicts) - rejected,
        duplicates=sorted_out.duplicates,
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
