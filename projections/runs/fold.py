"""How one run event changes a run's row (pure: no I/O).

Rules (the run-status contract, also written out in ``tests/support/reference.py``):

- The first event of a run creates its row with status ``pending``; ids
  (session, agent, user, tenant) take the first non-empty value seen;
  ``turn_id`` the latest; ``run_started`` sets ``parent_run_id`` and the
  agent. ``started_at`` is the time of the run's first event (normally its
  ``run_started``).
- ``labels``: envelope labels of every event, then ``run_started``'s payload
  labels, merged in log order (later keys win).
- Status: ``run_started`` -> ``pending``; ``run_status_changed`` sets status,
  phase (when given) and ``status_reason``; ``run_completed`` / ``run_failed``
  / ``run_canceled`` end the run (status, phase, ``ended_at``, and the error
  of a failure). An ended run keeps its first ending: later lifecycle events
  count as events but change no status.
- Approvals: ``approval_requested`` adds its tool call to
  ``awaiting_approval`` and sets the phase ``awaiting_approval``; the first
  ``approval_decided`` of a call takes it out, and the phase goes back to
  ``executing_tools`` once none waits. While one waits, a status change
  keeps that phase.
- A run may await any number of tool calls: :func:`fold_batch` keeps each
  row's ``pending_tool_uses`` and ``awaiting_approval`` as ordered sets
  (:class:`Calls`) while it folds and writes them back at the end, so an
  event costs a lookup, never a walk over the calls the run awaits.
  :func:`check` and :func:`apply` take those sets when given them.
- Counts: messages = ``user_message`` + ``assistant_text`` events; tool calls
  = ``tool_use``; tool errors = ``tool_result`` with ``is_error``; usage sums
  every ``usage`` event.
- ``updated_at`` is the latest ``occurred_at`` seen; ``first_offset`` /
  ``last_offset`` bracket the run's applied events in its partition.
- Rejected (dead-lettered, row unchanged): a non-run event on the run topic
  (``wrong_topic``); a record whose key is not its run_id (``key_mismatch``:
  it would be out of its run's order); a ``tool_use`` whose id is still
  awaiting its result (``duplicate_tool_use_id``); a ``tool_result`` with
  an empty id (``empty_tool_result_id``) or for no awaited ``tool_use``
  (``unknown_tool_use``). Each is the transcript ledger's rule of that name,
  so the transcript cache refuses such a record for the same reason. An
  event another tenant wrote on the run's id (``tenant_mismatch``,
  :func:`runwire.contract.run_lifecycle.foreign_to_run`; the transcript
  cache keeps each tenant's runs apart by its keys instead).
- Erasure: the projection also reads the session-events topic, for
  ``session_deleted`` only (the session index checks the rest of that topic;
  a deletion whose record key is not its session id is ignored here, as the
  session index rejects it). A run belongs to the session of its row (the
  first non-empty ``session_id`` of its events). A session is its tenant's
  (:func:`runwire.contract.session_tenant.foreign_to_session`), and here the
  runs of a session stand for it, each its own tenant's: a deletion removes
  the session's runs it is not foreign to (all of them when it names no
  tenant, those of its tenant, or of none, otherwise), and another tenant's
  deletion removes none of them (passed over, as the session index
  dead-letters it). The session is remembered as deleted by that tenant
  (one tombstone per session and deleting tenant) and each removed run as
  erased. Afterwards, every event of an erased run is dropped (neither
  applied nor dead-lettered), and an event that would give its run a session
  deleted by a tenant it is not foreign to erases the run instead of being
  applied. The two topics interleave in any order: whether the deletion
  comes before, between or after a run's events, the run ends with no row
  (and a run whose row names another session, or another tenant, is never
  touched). Only the dead letters depend on that order: an event of an
  erased run that the rules above would reject is dropped when the run was
  already erased, dead-lettered otherwise.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from runwire.contract.events import (
    ApprovalDecided,
    ApprovalRequested,
    Event,
    RunCanceled,
    RunCompleted,
    RunFailed,
    RunPhase,
    RunStarted,
    RunStatus,
    RunStatusChanged,
    Stream,
    ToolResult,
    ToolUse,
    Usage,
)
from runwire.contract.run_lifecycle import foreign_to_run
from runwire.contract.session_tenant import foreign_tenant
from runwire.log.records import SourceRecord
from runwire.projections.runtime.protocol import Rejection
from runwire.projections.runtime.rules import deleted_session

TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED})
_TERMINAL_VALUES = frozenset(s.value for s in TERMINAL)


class Rejected(Exception):
    """A run event that cannot be applied; ``reason`` is the dead-letter reason code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


AWAITING_APPROVAL = "awaiting_approval"
"""The phase of a run while one of its tool calls waits for a person's decision."""


@dataclass(slots=True)
class RunRow:
    """A run's row in ``run_status`` (column for column); readers get it as ``Run``."""

    run_id: str
    session_id: str | None
    agent_id: str | None
    turn_id: str | None
    user_id: str | None
    tenant: str | None
    parent_run_id: str | None
    status: str
    phase: str | None
    status_reason: str | None
    labels: dict[str, str]
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    message_count: int
    tool_call_count: int
    tool_error_count: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    last_error: dict[str, Any] | None
    pending_tool_uses: list[str]
    event_count: int
    log_partition: int
    first_offset: int
    last_offset: int
    awaiting_approval: list[str] = field(default_factory=list)

    @classmethod
    def new(cls, event: Event, partition: int, offset: int) -> RunRow:
        assert event.run_id is not None
        return cls(
            run_id=event.run_id,
            session_id=None,
            agent_id=None,
            turn_id=None,
            user_id=None,
            tenant=None,
            parent_run_id=None,
            status=RunStatus.PENDING.value,
            phase=None,
            status_reason=None,
            labels={},
            started_at=event.occurred_at,
            updated_at=event.occurred_at,
            ended_at=None,
            message_count=0,
            tool_call_count=0,
            tool_error_count=0,
            input_tokens=0,
            output_tokens=0,
            cache_read_tokens=0,
            cache_write_tokens=0,
            last_error=None,
            pending_tool_uses=[],
            event_count=0,
            log_partition=partition,
            first_offset=offset,
            last_offset=offset,
        )

    @property
    def ended(self) -> bool:
        return self.status in _TERMINAL_VALUES

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (times as ISO 8601)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
        return out


Run = RunRow
"""What readers get: a run as the run-status projection sees it."""


@dataclass(slots=True)
class Calls:
    """A row's awaited and held tool calls as ordered sets, while many of its events
    are folded: membership and removal in constant time, where the row's lists
    are searched end to end. :meth:`write_back` puts them in the row."""

    awaited: dict[str, None]
    held: dict[str, None]

    @classmethod
    def of(cls, row: RunRow) -> Calls:
        return cls(dict.fromkeys(row.pending_tool_uses), dict.fromkeys(row.awaiting_approval))

    def write_back(self, row: RunRow) -> None:
        row.pending_tool_uses = list(self.awaited)
        row.awaiting_approval = list(self.held)


def check(row: RunRow | None, event: Event, key: bytes | None, calls: Calls | None = None) -> None:
    """Raise :class:`Rejected` when ``event`` cannot be applied to ``row`` (whose
    calls are ``calls`` when given)."""
    if event.type.stream is not Stream.RUN:
        raise Rejected("wrong_topic", f"{event.type.value} event on the run-events topic")
    assert event.run_id is not None  # the contract requires it for run events
    if key != event.run_id.encode():
        raise Rejected(
            "key_mismatch",
            f"record key {key!r:.80} is not the run_id {event.run_id!r} of event {event.event_id}",
        )
    if row is not None and foreign_to_run(event, row.tenant):
        raise Rejected(
            "tenant_mismatch",
            f"event {event.event_id} of tenant {event.tenant!r} on run {event.run_id}, "
            f"which is tenant {row.tenant!r}'s",
        )
    payload = event.payload
    pending: Collection[str] = (
        calls.awaited if calls is not None else row.pending_tool_uses if row is not None else ()
    )
    if isinstance(payload, ToolUse) and payload.id in pending:
        raise Rejected(
            "duplicate_tool_use_id",
            f"run {event.run_id}: tool_use id {payload.id!r} is already awaiting its result",
        )
    if isinstance(payload, ToolResult) and not payload.tool_use_id:
        # The ledger's rule and reason, so both read models refuse it alike.
        raise Rejected("empty_tool_result_id", "a tool_result has an empty tool_use_id")
    if isinstance(payload, ToolResult) and payload.tool_use_id not in pending:
        raise Rejected(
            "unknown_tool_use",
            f"run {event.run_id}: tool_result for tool_use {payload.tool_use_id!r}, "
            "which the run is not awaiting",
        )


def apply(
    row: RunRow | None, event: Event, partition: int, offset: int, calls: Calls | None = None
) -> RunRow:
    """The row after ``event`` (call :func:`check` first). Mutates and returns ``row``;
    given ``calls``, the row's calls are changed there, not in its lists."""
    if row is None:
        row = RunRow.new(event, partition, offset)
    row.session_id = row.session_id or event.session_id
    row.agent_id = row.agent_id or event.agent_id
    row.user_id = row.user_id or event.user_id
    row.tenant = row.tenant or event.tenant
    row.turn_id = event.turn_id or row.turn_id
    if event.labels:
        row.labels.update(event.labels)
    row.event_count += 1
    row.updated_at = max(row.updated_at, event.occurred_at)
    row.last_offset = offset
    if calls is not None:
        _apply_payload(row, event, calls)
    else:  # one event alone: its row's calls as sets for it, then back in the row
        calls = Calls.of(row)
        _apply_payload(row, event, calls)
        calls.write_back(row)
    return row


def _end(row: RunRow, status: RunStatus, event: Event, reason: str | None) -> None:
    row.status = status.value
    row.phase = status.value
    row.status_reason = reason
    row.ended_at = event.occurred_at


def _apply_payload(row: RunRow, event: Event, calls: Calls) -> None:
    p = event.payload
    awaited, held = calls.awaited, calls.held
    if isinstance(p, RunStarted):
        row.agent_id = row.agent_id or p.agent_id
        row.parent_run_id = row.parent_run_id or p.parent_run_id
        row.labels.update(p.labels)
    elif isinstance(p, RunStatusChanged):
        if not row.ended:
            row.status = p.status.value
            row.phase = p.phase.value if p.phase is not None else row.phase
            row.status_reason = p.reason
            if p.status in TERMINAL:
                row.ended_at = event.occurred_at
            elif held:
                row.phase = AWAITING_APPROVAL
    elif isinstance(p, ApprovalRequested):
        held[p.tool_use_id] = None
        if not row.ended:
            row.phase = AWAITING_APPROVAL
    elif isinstance(p, ApprovalDecided):
        if p.tool_use_id in held:
            del held[p.tool_use_id]
            if not held and not row.ended:
                row.phase = RunPhase.EXECUTING_TOOLS.value
    elif isinstance(p, RunCompleted):
        if not row.ended:
            _end(row, RunStatus.COMPLETED, event, p.stop_reason)
    elif isinstance(p, RunFailed):
        if not row.ended:
            _end(row, RunStatus.FAILED, event, p.error_kind)
            row.last_error = {
                "kind": p.error_kind,
                "message": p.message,
                "retryable": p.retryable,
                "event_id": event.event_id,
            }
    elif isinstance(p, RunCanceled):
        if not row.ended:
            _end(row, RunStatus.CANCELED, event, p.reason)
    elif isinstance(p, ToolUse):
        row.tool_call_count += 1
        awaited[p.id] = None
    elif isinstance(p, ToolResult):
        del awaited[p.tool_use_id]
        if p.is_error:
            row.tool_error_count += 1
    elif isinstance(p, Usage):
        row.input_tokens += p.input_tokens
        row.output_tokens += p.output_tokens
        row.cache_read_tokens += p.cache_read_tokens
        row.cache_write_tokens += p.cache_write_tokens
    elif event.type.value in ("user_message", "assistant_text"):
        row.message_count += 1


@dataclass(slots=True)
class Erasure:
    """What the fold knows of erased sessions: the deleted ones and the runs removed with them."""

    sessions: dict[str, set[str | None]] = field(default_factory=dict)
    """Deleted sessions -> the tenants of their deletions (None: one without a tenant)."""
    runs: set[str] = field(default_factory=set)

    def erases(self, session_id: str, tenant: str | None) -> bool:
        """Whether a deletion of ``session_id`` reaches a run of ``tenant`` (it is not
        foreign to the run, whose tenant stands for the session's)."""
        return any(not foreign_tenant(by, tenant) for by in self.sessions.get(session_id, ()))


@dataclass(slots=True)
class BatchOutcome:
    """What a batch did.

    ``changed``: runs whose rows to write; ``deleted``: sessions deleted by
    this batch, by the deleting tenant (when, by which event); ``erased``: runs erased by this batch
    (run id -> session); ``rejections``: records to dead-letter.
    """

    changed: set[str] = field(default_factory=set)
    deleted: dict[tuple[str, str | None], tuple[datetime, str]] = field(default_factory=dict)
    erased: dict[str, str] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)


def _erase(
    rows: dict[str, RunRow], erasure: Erasure, out: BatchOutcome, run_id: str, session_id: str
) -> None:
    rows.pop(run_id, None)
    erasure.runs.add(run_id)
    out.erased[run_id] = session_id
    out.changed.discard(run_id)


def fold_batch(
    rows: dict[str, RunRow],
    records: Sequence[SourceRecord],
    *,
    erasure: Erasure | None = None,
    session_topic: str | None = None,
) -> BatchOutcome:
    """Fold fresh records into ``rows`` (loaded or created in place).

    ``erasure`` holds what is known to be erased among the batch's sessions
    and runs (updated in place); records of ``session_topic`` (when given)
    are read for ``session_deleted`` only. Rows erased by the batch are
    removed from ``rows``; the caller removes the stored ones, including the
    rows of a deleted session that the batch did not load.
    """
    out = BatchOutcome()
    gone = erasure if erasure is not None else Erasure()
    calls: dict[str, Calls] = {}
    try:
        _fold_records(rows, records, out, gone, calls, session_topic)
    finally:
        for run_id, of_run in calls.items():
            row = rows.get(run_id)
            if row is not None:
                of_run.write_back(row)
    return out


def _fold_records(
    rows: dict[str, RunRow],
    records: Sequence[SourceRecord],
    out: BatchOutcome,
    gone: Erasure,
    calls: dict[str, Calls],
    session_topic: str | None,
) -> None:
    for record in records:
        event = record.event
        if session_topic is not None and record.topic == session_topic:
            sid = deleted_session(record)
            by = event.tenant
            if sid is not None and by not in gone.sessions.setdefault(sid, set()):
                gone.sessions[sid].add(by)
                out.deleted[sid, by] = (event.occurred_at, event.event_id)
                for run_id in [
                    k
                    for k, r in rows.items()
                    if r.session_id == sid and not foreign_tenant(by, r.tenant)
                ]:
                    _erase(rows, gone, out, run_id, sid)
            continue
        if event.run_id is not None and event.run_id in gone.runs:
            continue  # erased: neither applied nor dead-lettered
        row = rows.get(event.run_id) if event.run_id else None
        of_run = calls.get(event.run_id) if event.run_id else None
        if row is not None and of_run is None:
            of_run = calls[row.run_id] = Calls.of(row)
        try:
            check(row, event, record.key, of_run)
        except Rejected as e:
            out.rejections.append(Rejection.of(record, e.reason, str(e)))
            continue
        assert event.run_id is not None
        session_id = (row.session_id if row is not None else None) or event.session_id
        tenant = (row.tenant if row is not None else None) or event.tenant
        if session_id is not None and gone.erases(session_id, tenant):
            # The run would be the deleted session's: it goes (with what it had).
            _erase(rows, gone, out, event.run_id, session_id)
            continue
        rows[event.run_id] = apply(row, event, record.partition, record.offset, of_run)
        out.changed.add(event.run_id)
