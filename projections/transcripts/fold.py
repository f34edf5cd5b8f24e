"""Folding one run's new records into its stored transcript (pure, no I/O).

Contract of :func:`fold_run`:
- Records at or below the run's last applied offset are skipped (the miss
  path, or another instance during a rebalance, applied them already).
- A run the store does not know is created by its first record (whatever its
  type): partition, first offset, session and first time come from it.
- Each record goes through :class:`~runwire.transcript.ledger.TranscriptBuilder`,
  the same fold as ``build_messages_from_events``; a record the ledger refuses
  becomes a :class:`Rejection` (reason = the ledger rule) and changes nothing.
- The run's ``last`` offset moves only to records that changed its stored
  state (or created it): the transcript, or the ids the builder remembers (of
  every event of the run, so an id reused with another body is refused here
  as by every read model). Duplicates (same event_id, same body) and refused
  events leave the run's keys exactly as they were. So a replay or a
  re-published event writes nothing but the partition position.
- A run whose transcript body expired (meta without body) cannot be folded
  here: every new record moves ``last`` and the body is rebuilt from the log
  by the miss path when it is read. (Such records are not checked by the
  ledger now, so a bad one is not dead-lettered; the miss path skips it.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from runwire.log.records import SourceRecord
from runwire.projections.runtime.protocol import Rejection
from runwire.projections.transcripts.body import (
    decode_messages,
    encode_append,
    encode_body,
    mark,
)
from runwire.projections.transcripts.keys import owner_tag
from runwire.projections.transcripts.store import Guard, RunHead, RunMeta, RunWrite
from runwire.transcript.errors import LedgerError
from runwire.transcript.ledger import TranscriptBuilder

__all__ = ["RunFold", "decode_messages", "fold_run", "millis"]  # decode_messages: older import path


def millis(record: SourceRecord) -> int:
    return int(record.event.occurred_at.timestamp() * 1000)


@dataclass(slots=True)
class RunFold:
    """What folding one run's records gives: the write (None: nothing changed),
    the builder after it (None for an expired body), and counters."""

    write: RunWrite | None
    builder: TranscriptBuilder | None
    rejections: list[Rejection] = field(default_factory=list)
    applied: int = 0
    duplicates: int = 0
    skipped: int = 0


def _moved(meta: RunMeta, last: int) -> RunMeta:
    """``meta`` with its last offset at ``last`` (``dataclasses.replace`` costs
    several times this, once per run per batch)."""
    return RunMeta(meta.partition, meta.first, last, meta.session_id, meta.first_ms, meta.owner)


def fold_run(
    run_id: str,
    head: RunHead,
    builder: TranscriptBuilder | None,
    records: Sequence[SourceRecord],
    *,
    tenant: str | None = None,
) -> RunFold:
    """Fold ``records`` (one run's, log order) onto what the store holds.

    ``builder`` must hold the stored state when ``head.has_body`` (it is
    changed in place); it is ignored otherwise. ``tenant``: the namespace the
    run is in (every record's event's tenant), carried into the write.
    """
    # Within a run offsets grow: the usual batch is past the stored state
    # from its first record on (no copy); the rest is a replay's tail.
    fresh = (
        records if records[0].offset > head.last else [r for r in records if r.offset > head.last]
    )
    out = RunFold(write=None, builder=None, skipped=len(records) - len(fresh))
    if not fresh:
        out.builder = builder if head.has_body else None
        return out
    meta = head.meta
    changed_at: int | None = None
    if meta is None:
        first = fresh[0]
        meta = RunMeta(
            partition=first.partition,
            first=first.offset,
            last=first.offset,
            session_id=first.event.session_id,
            first_ms=millis(first),
            owner=owner_tag(first.event.user_id, first.event.tenant),
        )
        builder = TranscriptBuilder(run_id)
        changed_at = first.offset
    elif not head.has_body:
        out.applied = len(fresh)
        out.write = RunWrite(
            run_id=run_id,
            guard=Guard.EXACT,
            expected_last=head.last,
            expected_body=False,
            meta=_moved(meta, fresh[-1].offset),
            body=None,
            tenant=tenant,
        )
        return out
    assert builder is not None, f"run {run_id}: a stored body needs its builder"
    stored = mark(builder)
    apply = builder.apply
    applied = 0
    for record in fresh:
        try:
            changed = apply(record.event)
        except LedgerError as e:
            out.rejections.append(Rejection.of(record, e.rule, str(e), type(e).__name__))
            continue
        if changed:
            applied += 1
            changed_at = record.offset
    out.applied = applied
    # The rest: the builder already holds their event_id.
    out.duplicates = len(fresh) - applied - len(out.rejections)
    out.builder = builder
    if changed_at is not None:
        out.write = RunWrite(
            run_id=run_id,
            guard=Guard.EXACT,
            expected_last=head.last,
            expected_body=head.has_body,
            meta=_moved(meta, changed_at),
            # A pop that took canonical events back changed committed messages:
            # the body is written whole then (appends only ever add).
            body=(
                encode_append(builder, stored)
                if head.has_body and builder.rewinds == stored.rewinds
                else encode_body(builder)
            ),
            tenant=tenant,
        )
    return out
