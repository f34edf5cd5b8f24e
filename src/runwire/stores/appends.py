"""What an ``append_events`` call writes to a run, decided from the run's events (pure).

Contract:
- :func:`history` is a run's events as every consumer reads them: an event
  id seen again with the same body is dropped, with another body it is
  skipped (the first is kept, :mod:`runwire.contract.identity`), and an
  event the run-status projection would dead-letter is left out.
- :func:`plan_append` checks a call against the run's history and returns
  the events to publish, or raises :class:`StoreInputError` naming the
  field; on an error nothing is to be written. The checks, in order:
  the agent (a run belongs to the agent of its first event: ``agent_id``);
  each event's own shape (:func:`runwire.stores.mapping.normalized`);
  identity (an event whose key the run already holds is dropped when its
  body is the same, and raises :class:`EventConflictError` otherwise);
  time (a new event older than the run's latest memory event, or than the
  one before it in the call: ``events[i].timestamp``); the transcript
  ledger (a tool result without its call, text after a tool call in one
  message, ...: ``events[i]``), and a tool result's ``tool_name`` must be
  its call's.
- New events carry the run's session, user and latest turn, so the session index
  counts them as activity.
"""

from __future__ import annotations

from collections.abc import Sequence

from runwire.contract.events import Event, ToolResult, ToolUse
from runwire.contract.identity import StreamIds, body_digest
from runwire.errors import DecodeError
from runwire.projections.runs.fold import Calls, Rejected, RunRow, apply, check
from runwire.stores.mapping import memory_events, normalized, runwire_events
from runwire.stores.types import EventConflictError, MemoryEvent, StoreInputError
from runwire.transcript.errors import LedgerError
from runwire.transcript.ledger import TranscriptBuilder

__all__ = ["history", "plan_append", "run_row"]


def history(run_id: str, events: Sequence[Event]) -> list[Event]:
    """The run's events as consumers keep them (see the module contract)."""
    seen = StreamIds()
    key = run_id.encode()
    row: RunRow | None = None
    calls: Calls | None = None  # a run may await any number of calls: never searched
    out: list[Event] = []
    for offset, event in enumerate(events):
        try:
            if not seen.admit(event, key):
                continue
        except DecodeError:
            continue  # a conflicting duplicate: every consumer keeps the first
        try:
            check(row, event, key, calls)
        except Rejected:
            continue
        row = apply(row, event, 0, offset, calls)
        if calls is None:
            calls = Calls.of(row)
        out.append(event)
    return out


def run_row(run_id: str, events: Sequence[Event]) -> RunRow | None:
    """The run-status row the run's events make (None for no events)."""
    row: RunRow | None = None
    calls: Calls | None = None
    for offset, event in enumerate(history(run_id, events)):
        row = apply(row, event, 0, offset, calls)
        if calls is None:
            calls = Calls.of(row)
    if row is not None and calls is not None:
        calls.write_back(row)
    return row


def plan_append(
    agent_id: str, run_id: str, existing: Sequence[Event], events: Sequence[MemoryEvent]
) -> list[Event]:
    """The events an append of ``events`` to the run writes (see the module contract)."""
    if not isinstance(agent_id, str) or not agent_id:
        raise StoreInputError("agent_id", "must be non-empty text")
    if not isinstance(run_id, str) or not run_id:
        raise StoreInputError("run_id", "must be non-empty text")
    kept = history(run_id, existing)
    owner = next((e.agent_id for e in kept if e.agent_id), None)
    if owner is not None and owner != agent_id:
        raise StoreInputError(
            "agent_id", f"run {run_id} belongs to agent {owner!r}, not {agent_id!r}"
        )
    checked = normalized(events)
    session_id = next((e.session_id for e in kept if e.session_id), None)
    turn_id = next((e.turn_id for e in reversed(kept) if e.turn_id), None)
    user_id = next((e.user_id for e in kept if e.user_id), None)
    candidates = runwire_events(
        run_id, checked, agent_id=agent_id, session_id=session_id, turn_id=turn_id, user_id=user_id
    )
    digests = {e.event_id: body_digest(e) for e in kept}
    fresh: list[tuple[int, Event]] = []
    for i, event in enumerate(candidates):
        stored = digests.get(event.event_id)
        if stored is None:
            fresh.append((i, event))
        elif stored != body_digest(event):
            raise EventConflictError(
                f"events[{i}]",
                f"run {run_id} already holds another {event.type.value} under this event's "
                "key (same tool call id, or same type and millisecond); the first is kept",
            )
    _check_time(kept, fresh)
    _check_ledger(run_id, kept, fresh, [m for m, _ in checked])
    return [event for _, event in fresh]


def _check_time(kept: Sequence[Event], fresh: Sequence[tuple[int, Event]]) -> None:
    stamps = [e.occurred_at for e in kept if memory_events([e])]
    latest = max(stamps) if stamps else None
    for i, event in fresh:
        if latest is not None and event.occurred_at < latest:
            raise StoreInputError(
                f"events[{i}].timestamp",
                f"{event.occurred_at.isoformat()} goes back in time: the run's history "
                f"already reaches {latest.isoformat()}",
            )
        latest = event.occurred_at


def _check_ledger(
    run_id: str,
    kept: Sequence[Event],
    fresh: Sequence[tuple[int, Event]],
    given: Sequence[MemoryEvent],
) -> None:
    builder = TranscriptBuilder(run_id)
    names: dict[str, str] = {}
    for event in kept:
        try:
            builder.apply(event)
        except LedgerError:
            continue  # refused by the transcript cache too: not part of the transcript
        if isinstance(event.payload, ToolUse):
            names[event.payload.id] = event.payload.name
    for i, event in fresh:
        try:
            builder.apply(event)
        except LedgerError as e:
            raise StoreInputError(f"events[{i}]", f"breaks the transcript: {e}") from None
        p = event.payload
        if isinstance(p, ToolUse):
            names[p.id] = p.name
        elif isinstance(p, ToolResult):
            name = given[i].data["tool_name"]  # the ledger took it: its call is known
            if name != names.get(p.tool_use_id):
                raise StoreInputError(
                    f"events[{i}].data.tool_name",
                    f"{name!r} is not the name of tool call {p.tool_use_id!r} "
                    f"({names.get(p.tool_use_id)!r})",
                )
