"""The pure rules of the usage read model: ``usage`` events -> one rollup per run, model and day.

Contract:
- A row sums the ``usage`` events of one run, one model of one provider and
  one UTC day (of ``occurred_at``): model calls, and each token count. What
  the row says of the run (session, user, agent, tenant) is the first value
  its events name, in log order (one partition per run, so every replay and
  rebuild agrees).
- Other run events change nothing, but every event's id is remembered, so
  an id applied by another consumer and reused with another body is refused
  here too (``conflicting_duplicate_event``); a non-run event on
  the run-events topic is refused (``wrong_topic``), a usage event whose key
  is not its run id too (``key_mismatch``), as the run-status store does.
- The session-events topic is read for ``session_deleted`` only (the rule of
  :func:`~runwire.projections.runtime.rules.deleted_session`): the session's
  rows go, the session is kept as deleted, and later (or replayed) usage
  events naming it are dropped. A row belongs to the session its usage events
  name; one that names none is nobody's and stays. Either order of the two
  topics ends with the same rows.
- A session is its tenant's
  (:func:`runwire.contract.session_tenant.foreign_to_session`), and here its
  rows stand for it, each its own tenant's (as the run-status store's runs
  do): a deletion removes the session's rows it is not foreign to (all of
  them when it names no tenant, those of its tenant, or of none, otherwise),
  and another tenant's deletion removes none of them (passed over, as the
  session index dead-letters it). The session is remembered as deleted by
  that tenant (one tombstone per session and deleting tenant), and a later
  usage event is dropped when a deletion of its session is not foreign to
  its row's tenant (the row's as the batch folds it, else the event's).
- Cost is not folded: it is priced when read (:mod:`.prices`), so a price
  change needs no rebuild.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from runwire.contract.events import Event, Stream, Usage
from runwire.contract.session_tenant import foreign_tenant
from runwire.log.records import SourceRecord
from runwire.projections.runtime.protocol import Rejection
from runwire.projections.runtime.rules import deleted_session

COUNTS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
"""The token counts a row sums, in the order rows and readers carry them."""

RollupKey = tuple[str, str, str, date]
"""(run id, model, provider, UTC day)."""

Deleted = dict[str, set[str | None]]
"""Deleted sessions -> the tenants of their deletions (None: one without a tenant)."""


@dataclass(slots=True)
class Rollup:
    """The usage of one run with one model on one UTC day."""

    run_id: str
    model: str
    provider: str
    day: date
    session_id: str | None = None
    user_id: str | None = None
    agent_id: str | None = None
    tenant: str | None = None
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    first_at: datetime | None = None
    last_at: datetime | None = None

    @property
    def key(self) -> RollupKey:
        return (self.run_id, self.model, self.provider, self.day)

    def add(self, other: Rollup) -> None:
        """Fold ``other`` (a later part of the same key) into this row."""
        self.session_id = self.session_id or other.session_id
        self.user_id = self.user_id or other.user_id
        self.agent_id = self.agent_id or other.agent_id
        self.tenant = self.tenant or other.tenant
        self.calls += other.calls
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.first_at = _earliest(self.first_at, other.first_at)
        self.last_at = _latest(self.last_at, other.last_at)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


def day_of(at: datetime) -> date:
    """The UTC day a usage counts for."""
    return at.astimezone(UTC).date()


def rollup_of(event: Event) -> Rollup:
    """One ``usage`` event as a one-call row."""
    payload = event.payload
    assert isinstance(payload, Usage)
    assert event.run_id is not None
    return Rollup(
        run_id=event.run_id,
        model=payload.model,
        provider=payload.provider,
        day=day_of(event.occurred_at),
        session_id=event.session_id,
        user_id=event.user_id,
        agent_id=event.agent_id,
        tenant=event.tenant,
        calls=1,
        input_tokens=payload.input_tokens,
        output_tokens=payload.output_tokens,
        cache_read_tokens=payload.cache_read_tokens,
        cache_write_tokens=payload.cache_write_tokens,
        reasoning_tokens=payload.reasoning_tokens,
        first_at=event.occurred_at,
        last_at=event.occurred_at,
    )


@dataclass(slots=True)
class BatchOutcome:
    """What a batch changes.

    ``rollups``: what to add to the stored rows, by key (none of a deleted
    session); ``deleted``: sessions deleted by this batch, by the deleting
    tenant (when, by which event), whose stored rows go (those the deletion
    is not foreign to); ``rejections``: records to dead-letter.
    """

    rollups: dict[RollupKey, Rollup] = field(default_factory=dict)
    deleted: dict[tuple[str, str | None], tuple[datetime, str]] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)


def sessions_of(records: Sequence[SourceRecord], session_topic: str) -> list[str]:
    """The sessions a batch may change: of its usage events and its deletions (sorted)."""
    out: set[str] = set()
    for record in records:
        if record.topic == session_topic:
            sid = deleted_session(record)
            if sid is not None:
                out.add(sid)
        elif isinstance(record.event.payload, Usage) and record.event.session_id:
            out.add(record.event.session_id)
    return sorted(out)


def erases(
    deleted: Mapping[str, Collection[str | None]], session_id: str, tenant: str | None
) -> bool:
    """Whether a deletion of ``session_id`` in ``deleted`` reaches a row of ``tenant`` (it is
    not foreign to the row, whose tenant stands for the session's)."""
    return any(not foreign_tenant(by, tenant) for by in deleted.get(session_id, ()))


def fold_batch(
    records: Sequence[SourceRecord], *, deleted: Deleted, session_topic: str
) -> BatchOutcome:
    """Fold fresh records (log order per partition) into what to write.

    ``deleted`` holds the sessions known to be deleted among the batch's, with the
    tenants of their deletions (updated in place with the batch's own deletions).
    """
    out = BatchOutcome()
    for record in records:
        event = record.event
        if record.topic == session_topic:
            sid = deleted_session(record)
            by = event.tenant
            if sid is not None and by not in deleted.setdefault(sid, set()):
                deleted[sid].add(by)
                out.deleted[sid, by] = (event.occurred_at, event.event_id)
                for key in [
                    k
                    for k, r in out.rollups.items()
                    if r.session_id == sid and not foreign_tenant(by, r.tenant)
                ]:
                    del out.rollups[key]
            continue
        if event.type.stream is not Stream.RUN:
            out.rejections.append(
                Rejection.of(
                    record, "wrong_topic", f"{event.type.value} event on the run-events topic"
                )
            )
            continue
        if not isinstance(event.payload, Usage):
            continue
        assert event.run_id is not None  # the contract requires it for run events
        if record.key != event.run_id.encode():
            out.rejections.append(
                Rejection.of(
                    record,
                    "key_mismatch",
                    f"record key {record.key!r:.80} is not the run_id {event.run_id!r} "
                    f"of event {event.event_id}",
                )
            )
            continue
        part = rollup_of(event)
        known = out.rollups.get(part.key)
        tenant = (known.tenant if known is not None else None) or event.tenant
        if event.session_id is not None and erases(deleted, event.session_id, tenant):
            continue  # erased: neither applied nor dead-lettered
        if known is None:
            out.rollups[part.key] = part
        else:
            known.add(part)
    return out
