"""How session events and run events change a session's row (pure: no I/O).

The session index reads two topics whose records interleave differently in
every process, so its rules keep the result independent of that interleaving:

- **Session events** (session topic, one partition per session, so in order):
  ``session_created`` declares the session (user: payload or envelope;
  tenant: envelope; metadata: payload over what is there; ``declared_at``);
  a second one changes nothing. ``session_metadata_set`` sets a key (a null
  value removes it). ``session_ended`` makes the status ``ended`` (first end
  wins). ``session_cleared`` records ``cleared_at``. ``session_deleted``
  removes the row and leaves a tombstone: every later event of the session,
  from either topic, is ignored, so neither replays nor late runs bring it
  back. Envelope labels of session events merge into ``labels``.
- **A session is its tenant's** (:func:`~runwire.contract.session_tenant.foreign_to_session`):
  its tenant (``declared_tenant``) is its declaration's, or before one the
  first tenant its session events name. A session event of another tenant
  is not applied (not even its labels or its time) and is dead-lettered
  (``tenant_mismatch``), ``session_created`` too; one without a tenant is
  the session's.
- **The single-writer fence** (session topic, so the session's partition
  order decides; :mod:`runwire.sessions.versions`): ``session_writer_claimed``
  is taken when no other holder's claim is open (an open claim lapses at its
  ``occurred_at`` + ``lease_ms``; no lease: open until released) and its
  ``expected_version`` is null or the session's ``version``: then
  ``writer`` is its holder and ``writer_until`` the lapse (null: none). A
  claim not taken changes nothing. ``session_writer_released`` by the open
  claim's holder closes it; ``committed`` adds one to ``version`` and makes
  the holder ``version_by``. A release by anyone else changes nothing.
- ``session_forked`` records the parent and the fork point
  (``parent_session_id``, ``fork``); the first one holds.
- **Run events** (run topic, any partition) only feed order-free aggregates:
  ``last_activity_at`` (max), ``first_seen_at`` (min), ``run_count`` (number
  of ``run_started``), and the first / last run by ``(occurred_at, run_id)``.
  A run event of an unknown session creates the row (status ``active``).
- Derived: ``user_id`` / ``tenant`` are the declared ones (the tenant: the
  session's, see above), else the first run's; ``created_at`` is
  ``declared_at``, else ``first_seen_at``.
- Rejected: an event of the wrong stream on either topic (``wrong_topic``),
  a record whose key is not its session id (session topic) or run id
  (run topic) (``key_mismatch``), and another tenant's session event
  (``tenant_mismatch``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from runwire.contract.events import (
    Event,
    RunStarted,
    SessionCleared,
    SessionCreated,
    SessionDeleted,
    SessionEnded,
    SessionForked,
    SessionMetadataSet,
    SessionWriterClaimed,
    SessionWriterReleased,
    Stream,
)
from runwire.contract.session_tenant import foreign_to_session
from runwire.log.records import SourceRecord
from runwire.projections.runtime.protocol import Rejection


class Rejected(Exception):
    """An event the session index cannot apply; ``reason`` is the dead-letter reason code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


BOOKKEEPING = frozenset(
    {
        "declared",
        "declared_at",
        "declared_user_id",
        "declared_tenant",
        "first_seen_at",
        "first_run_id",
        "first_run_at",
        "first_run_user_id",
        "first_run_tenant",
    }
)
"""Columns the fold keeps to derive the others in any order; not part of the read API."""


@dataclass(slots=True)
class SessionRow:
    """A session's row in ``session_index`` (column for column); readers get it as ``Session``."""

    session_id: str
    user_id: str | None
    tenant: str | None
    metadata: dict[str, Any]
    labels: dict[str, str]
    status: str
    created_at: datetime
    ended_at: datetime | None
    cleared_at: datetime | None
    last_activity_at: datetime
    run_count: int
    last_run_id: str | None
    last_run_at: datetime | None
    declared: bool
    declared_at: datetime | None
    declared_user_id: str | None
    declared_tenant: str | None
    """The session's tenant: its declaration's, or before one the first tenant its
    session events name (:func:`~runwire.contract.session_tenant.foreign_to_session`)."""
    first_seen_at: datetime
    first_run_id: str | None
    first_run_at: datetime | None
    first_run_user_id: str | None
    first_run_tenant: str | None
    version: int = 0
    """Writes committed under the single-writer fence (``session_writer_released``)."""
    writer: str | None = None
    """The holder of the open claim, if any."""
    writer_until: datetime | None = None
    """When the open claim lapses (None: when released)."""
    version_by: str | None = None
    """The holder whose release made ``version``."""
    parent_session_id: str | None = None
    fork: dict[str, Any] | None = None
    """The fork point (``session_forked``'s payload): ``turn``, ``run_ids``,
    ``through_offset``, ``cuts``."""

    @classmethod
    def new(cls, session_id: str, at: datetime) -> SessionRow:
        return cls(
            session_id=session_id,
            user_id=None,
            tenant=None,
            metadata={},
            labels={},
            status="active",
            created_at=at,
            ended_at=None,
            cleared_at=None,
            last_activity_at=at,
            run_count=0,
            last_run_id=None,
            last_run_at=None,
            declared=False,
            declared_at=None,
            declared_user_id=None,
            declared_tenant=None,
            first_seen_at=at,
            first_run_id=None,
            first_run_at=None,
            first_run_user_id=None,
            first_run_tenant=None,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (times as ISO 8601); the bookkeeping columns left out."""
        out = {k: v for k, v in asdict(self).items() if k not in BOOKKEEPING}
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
        return out

    def settle(self) -> SessionRow:
        """Recompute the derived columns from the ones events set."""
        self.user_id = self.declared_user_id or self.first_run_user_id
        self.tenant = self.declared_tenant or self.first_run_tenant
        self.created_at = self.declared_at if self.declared_at is not None else self.first_seen_at
        return self


Session = SessionRow
"""What readers get: a session as the session index sees it."""


def remembered(record: SourceRecord, session_topic: str) -> bool:
    """Whether the index keeps this record's event id (and body digest): every one.

    Of run events only ``run_started`` changes the index twice (a count), but
    an id reused with another body must be refused here as by every read
    model (:mod:`runwire.contract.identity`), so every id is kept.
    """
    return True


def check(event: Event, key: bytes | None, *, from_session_topic: bool) -> None:
    """Raise :class:`Rejected` when the record cannot be applied."""
    wanted = Stream.SESSION if from_session_topic else Stream.RUN
    if event.type.stream is not wanted:
        topic = "session-events" if from_session_topic else "run-events"
        raise Rejected("wrong_topic", f"{event.type.value} event on the {topic} topic")
    owner = event.session_id if from_session_topic else event.run_id
    assert owner is not None  # the contract requires it for this stream
    if key != owner.encode():
        kind = "session_id" if from_session_topic else "run_id"
        raise Rejected(
            "key_mismatch",
            f"record key {key!r:.80} is not the {kind} {owner!r} of event {event.event_id}",
        )


def touch(row: SessionRow | None, session_id: str, at: datetime) -> SessionRow:
    """The row (created when missing) with ``at`` folded into its activity bounds."""
    if row is None:
        return SessionRow.new(session_id, at)
    row.last_activity_at = max(row.last_activity_at, at)
    row.first_seen_at = min(row.first_seen_at, at)
    return row


def apply_run_event(row: SessionRow, event: Event) -> None:
    """Fold a run event (order-free: any interleaving gives the same row)."""
    if not isinstance(event.payload, RunStarted):
        return
    assert event.run_id is not None
    row.run_count += 1
    key = (event.occurred_at, event.run_id)
    if row.last_run_at is None or key > (row.last_run_at, row.last_run_id or ""):
        row.last_run_at, row.last_run_id = key
    if row.first_run_at is None or key < (row.first_run_at, row.first_run_id or ""):
        row.first_run_at, row.first_run_id = key
        row.first_run_user_id = event.user_id
        row.first_run_tenant = event.tenant


def check_tenant(row: SessionRow | None, event: Event) -> None:
    """Raise :class:`Rejected` when another tenant than the session's wrote ``event``."""
    if row is not None and foreign_to_session(event, row.declared_tenant):
        raise Rejected(
            "tenant_mismatch",
            f"event {event.event_id} ({event.type.value}) of tenant {event.tenant!r} on "
            f"session {event.session_id}, which is tenant {row.declared_tenant!r}'s",
        )


def apply_session_event(row: SessionRow, event: Event) -> bool:
    """Fold a session event (in its partition's order); True when it deletes the session.

    Another tenant's event (:func:`check_tenant` rejects it) changes nothing.
    """
    if foreign_to_session(event, row.declared_tenant):
        return False
    row.declared_tenant = row.declared_tenant or event.tenant
    p = event.payload
    if event.labels:
        row.labels.update(event.labels)
    if isinstance(p, SessionCreated):
        if not row.declared:
            row.declared = True
            row.declared_at = event.occurred_at
            row.declared_user_id = p.user_id or event.user_id
            row.metadata = {**row.metadata, **p.metadata}
    elif isinstance(p, SessionMetadataSet):
        if p.value is None:
            row.metadata.pop(p.key, None)
        else:
            row.metadata[p.key] = p.value
    elif isinstance(p, SessionEnded):
        if row.status != "ended":
            row.status = "ended"
            row.ended_at = event.occurred_at
    elif isinstance(p, SessionCleared):
        row.cleared_at = event.occurred_at
    elif isinstance(p, SessionForked):
        if row.parent_session_id is None:  # a session forks once: the first one holds
            row.parent_session_id = p.parent_session_id
            row.fork = {
                "turn": p.turn,
                "run_ids": list(p.run_ids),
                "through_offset": p.through_offset,
                "cuts": dict(p.cuts),
            }
    elif isinstance(p, SessionDeleted):
        return True
    elif isinstance(p, SessionWriterClaimed):
        claim(row, p, event.occurred_at)
    elif isinstance(p, SessionWriterReleased) and row.writer == p.holder:
        row.writer = row.writer_until = None
        if p.committed:
            row.version += 1
            row.version_by = p.holder
    return False


def claim_open(row: SessionRow, at: datetime) -> bool:
    """Whether the session has a claim open at ``at`` (one that has not lapsed)."""
    return row.writer is not None and (row.writer_until is None or at < row.writer_until)


def claim(row: SessionRow, p: SessionWriterClaimed, at: datetime) -> None:
    """Take the claim when no other holder's is open and the version is the expected one."""
    if claim_open(row, at) and row.writer != p.holder:
        return
    if p.expected_version is not None and p.expected_version != row.version:
        return
    row.writer = p.holder
    row.writer_until = None if p.lease_ms is None else at + timedelta(milliseconds=p.lease_ms)


@dataclass(slots=True)
class BatchOutcome:
    """What a batch did: rows changed, sessions deleted (when, by which event, whose
    tenant), rejections."""

    changed: set[str] = field(default_factory=set)
    deleted: dict[str, tuple[datetime, str, str | None]] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)


def fold_batch(
    rows: dict[str, SessionRow],
    tombstoned: set[str],
    records: Sequence[SourceRecord],
    session_topic: str,
) -> BatchOutcome:
    """Fold fresh records of either topic into ``rows`` and ``tombstoned`` (in place).

    Changed rows are left settled (derived columns recomputed).
    """
    out = BatchOutcome()
    for record in records:
        event = record.event
        from_session_topic = record.topic == session_topic
        sid = event.session_id
        try:
            check(event, record.key, from_session_topic=from_session_topic)
            if from_session_topic and sid is not None and sid not in tombstoned:
                check_tenant(rows.get(sid), event)
        except Rejected as e:
            out.rejections.append(Rejection.of(record, e.reason, str(e)))
            continue
        if sid is None or sid in tombstoned:
            continue
        row = touch(rows.get(sid), sid, event.occurred_at)
        rows[sid] = row
        out.changed.add(sid)
        if not from_session_topic:
            apply_run_event(row, event)
        elif apply_session_event(row, event):
            tombstoned.add(sid)
            # The tombstone is the session's tenant's (row-level security).
            tenant = row.declared_tenant or row.first_run_tenant or event.tenant
            out.deleted[sid] = (event.occurred_at, event.event_id, tenant)
            out.changed.discard(sid)
            del rows[sid]
    for sid in out.changed:
        rows[sid].settle()
    return out
