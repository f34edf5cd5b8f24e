"""What a run store ``upsert`` writes, decided from the run's events (pure).

Contract:
- A run's store status comes from its events as the orchestrator folds them:
  the lifecycle status (``awaiting_tools`` shown as ``running``) with the
  pause beside it (``run_status_changed(paused)`` sets it; a status change
  caused by that pause event, or an ending, lifts it).
- :func:`plan_upsert` returns the events that bring the run to the record:
  a new run gets ``run_started`` (agent, session, turn, labels); then, to
  reach the record's status: ``running`` -> ``run_status_changed(running)``,
  ``paused`` -> ``run_status_changed(paused)``, lifting a pause -> the
  status change caused by the pause (the event the client's ``resume``
  writes, same id), ``completed`` / ``failed`` / ``canceled`` -> the ending
  event. Nothing when the run already is so (idempotent).
- Refused with :class:`StoreInputError` naming the field: a status that is
  not one of Goa-AI's; leaving an ended run (``status``); going back to
  ``pending``; another ``agent_id``, ``session_id`` or ``turn_id`` than the
  run has; labels that change without a status change (runwire keeps
  labels on the events that change a run); a new run in an ended session
  (:class:`SessionEndedError`, checked by the caller).
- The events carry the run's user: for a new run in a session, the
  session's user (a run of a session is its user's, as the orchestrator's
  history checks).
- Ids are deterministic: per (run, the transition, the number of events the
  run had), so a retried upsert writes the same events.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from runwire.contract import ids
from runwire.contract.events import (
    Event,
    EventPayload,
    RunCanceled,
    RunCompleted,
    RunFailed,
    RunStarted,
    RunStatusChanged,
)
from runwire.contract.events import RunStatus as LogStatus
from runwire.contract.run_lifecycle import RunLifecycle
from runwire.projections.runs.fold import RunRow
from runwire.stores.appends import history
from runwire.stores.mapping import PRODUCER
from runwire.stores.types import RunRecord, RunStatus, StoreInputError

__all__ = [
    "Lifecycle",
    "check_record",
    "lifecycle",
    "lifecycle_status",
    "plan_upsert",
    "record_of",
    "store_status",
]


def store_status(status: str) -> RunStatus:
    """Goa-AI's status for a runwire status."""
    return RunStatus.RUNNING if status == LogStatus.AWAITING_TOOLS.value else RunStatus(status)


Lifecycle = RunLifecycle
"""Where a run stands (the one fold, :mod:`runwire.contract.run_lifecycle`)."""


def lifecycle_status(state: RunLifecycle) -> RunStatus:
    """Goa-AI's status of a run: paused while a pause is in force."""
    if state.paused_by is not None:
        return RunStatus.PAUSED
    return store_status(state.status.value)


def lifecycle(events: Sequence[Event]) -> RunLifecycle:
    return RunLifecycle.of(events)


def record_of(row: RunRow) -> RunRecord:
    """The store's record of a run-status row."""
    return RunRecord(
        agent_id=row.agent_id or "",
        run_id=row.run_id,
        session_id=row.session_id,
        turn_id=row.turn_id,
        status=store_status(row.status),
        started_at=row.started_at,
        updated_at=row.updated_at,
        labels=dict(row.labels),
    )


def check_record(record: RunRecord) -> RunStatus:
    """The record's status; :class:`StoreInputError` for a record no upsert takes."""
    if not isinstance(record, RunRecord):
        raise StoreInputError("record", f"must be a RunRecord, got {type(record).__name__}")
    for name in ("agent_id", "run_id"):
        value = getattr(record, name)
        if not isinstance(value, str) or not value:
            raise StoreInputError(f"record.{name}", "must be non-empty text")
    try:
        return RunStatus(record.status)
    except ValueError:
        known = ", ".join(s.value for s in RunStatus)
        raise StoreInputError(
            "record.status", f"unknown run status {record.status!r} (known: {known})"
        ) from None


def plan_upsert(
    record: RunRecord, row: RunRow | None, events: Sequence[Event], *, user_id: str | None = None
) -> list[Event]:
    """The events that bring the run (its row and its events) to ``record``.

    ``user_id``: the user of the run's session, for a new run (a run of a
    session is its user's); an existing run keeps its own.
    """
    target = check_record(record)
    user_id = row.user_id if row is not None else user_id
    run_id = record.run_id
    now = record.updated_at
    out: list[Event] = []
    labels = dict(record.labels)

    def event(
        payload: EventPayload,
        event_id: str,
        *,
        causation: str | None = None,
        at: datetime | None = now,
        with_labels: bool = True,
    ) -> Event:
        return Event.create(
            payload,
            run_id=run_id,
            session_id=record.session_id,
            agent_id=record.agent_id,
            turn_id=record.turn_id,
            user_id=user_id,
            producer=PRODUCER,
            causation_id=causation,
            labels=labels if with_labels else None,
            occurred_at=at,
            event_id=event_id,
        )

    def step_id(cause: str) -> str:
        return ids.deterministic_event_id(run_id, f"run-store:{cause}", state.events)

    state = lifecycle(history(run_id, events))
    if row is None:
        started = RunStarted(agent_id=record.agent_id, labels=labels)
        first_id = ids.deterministic_event_id(run_id, "run-store:started", 0)
        out.append(event(started, first_id, at=record.started_at or now, with_labels=False))
        current = RunStatus.PENDING
    else:
        _check_same(record, row)
        current = lifecycle_status(state)
        if target is current:
            if not labels.items() <= row.labels.items():
                raise StoreInputError(
                    "record.labels",
                    f"run {run_id}: labels change only with its status ({current.value} now)",
                )
            return []
        if current.terminal:
            raise StoreInputError(
                "record.status",
                f"run {run_id} has ended ({current.value}); it cannot become {target.value}",
            )
        if target is RunStatus.PENDING:
            raise StoreInputError(
                "record.status", f"run {run_id} is {current.value}; it cannot go back to pending"
            )
    step = f"{current.value}->{target.value}"
    if current is RunStatus.PAUSED and target is RunStatus.RUNNING:
        assert state.paused_by is not None
        resumed = RunStatusChanged(status=state.status, reason="resumed")
        # The client's resume writes this id too: one resume per pause.
        resume_id = ids.deterministic_event_id(run_id, state.paused_by, 0)
        out.append(event(resumed, resume_id, causation=state.paused_by))
        if state.status is LogStatus.PENDING:
            out.append(
                event(RunStatusChanged(status=LogStatus.RUNNING, reason="run store"), step_id(step))
            )
    elif target is RunStatus.RUNNING:
        out.append(
            event(RunStatusChanged(status=LogStatus.RUNNING, reason="run store"), step_id(step))
        )
    elif target is RunStatus.PAUSED:
        out.append(
            event(RunStatusChanged(status=LogStatus.PAUSED, reason="run store"), step_id(step))
        )
    elif target is RunStatus.COMPLETED:
        out.append(event(RunCompleted(stop_reason="run store"), step_id(step)))
    elif target is RunStatus.FAILED:
        out.append(
            event(
                RunFailed(error_kind="run_store", message="failed through the run store"),
                step_id(step),
            )
        )
    elif target is RunStatus.CANCELED:
        out.append(event(RunCanceled(reason="run store"), step_id(step)))
    return out


def _check_same(record: RunRecord, row: RunRow) -> None:
    for name in ("agent_id", "session_id", "turn_id"):
        have: str | None = getattr(row, name)
        given: str | None = getattr(record, name)
        if have is not None and given is not None and have != given:
            raise StoreInputError(
                f"record.{name}", f"run {record.run_id} has {name} {have!r}, not {given!r}"
            )
        if name == "agent_id" and have is not None and given != have:
            raise StoreInputError(
                "record.agent_id", f"run {record.run_id} belongs to agent {have!r}, not {given!r}"
            )
