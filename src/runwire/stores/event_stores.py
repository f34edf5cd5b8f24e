"""The three stores on any :class:`~runwire.stores.protocol.StoreLog`.

- The rules live in :mod:`runwire.stores.appends` and
  :mod:`runwire.stores.transitions` (pure); these classes read what the
  rules need from the seam, apply them, and write what they return, so the
  log-backed stores and their in-memory twins behave alike.
- An append checks the run first (:func:`~runwire.stores.appends.plan_append`)
  and reads it again after writing: when another writer got a different body
  under one of its keys in between, readers keep that one and the append
  raises :class:`~runwire.stores.types.EventConflictError`.
- ``load_run`` of a pair (agent, run) that the log does not hold (an unknown
  run, or a run of another agent) is an empty snapshot, as Goa-AI's
  ``LoadRun`` documents; appending to another agent's run is refused.
- ``create`` of an existing session returns it as it is (Goa-AI's
  idempotent create), unless it names another user (refused: ``user_id``).
- A session's records: ``created_at`` is its declaration (or its first
  run's time), ``last_activity_at`` its latest event of either topic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from runwire.contract import ids
from runwire.contract.events import Event, EventPayload, SessionCreated, SessionEnded
from runwire.contract.events import RunStatus as LogStatus
from runwire.contract.identity import body_digest
from runwire.errors import InputError
from runwire.projections.sessions.fold import SessionRow
from runwire.stores.appends import history, plan_append
from runwire.stores.mapping import PRODUCER, memory_events
from runwire.stores.protocol import StoreLog
from runwire.stores.transitions import check_record, plan_upsert, record_of
from runwire.stores.types import (
    EventConflictError,
    MemoryEvent,
    RunNotFoundError,
    RunRecord,
    RunStatus,
    SessionEndedError,
    SessionNotFoundError,
    SessionRecord,
    SessionStatus,
    Snapshot,
    StoreInputError,
)

__all__ = ["EventMemoryStore", "EventRunStore", "EventSessionStore", "Stores"]


def _id(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise StoreInputError(field, "must be non-empty text")
    return value


class EventMemoryStore:
    """:class:`~runwire.stores.protocol.MemoryStore` on a store log."""

    def __init__(self, log: StoreLog) -> None:
        self._log = log

    async def load_run(self, agent_id: str, run_id: str) -> Snapshot:
        _id(agent_id, "agent_id")
        _id(run_id, "run_id")
        run = await self._log.run(run_id)
        if run is None or (run.row.agent_id is not None and run.row.agent_id != agent_id):
            return Snapshot(agent_id=agent_id, run_id=run_id)
        events = tuple(memory_events(history(run_id, run.events)))
        return Snapshot(agent_id=agent_id, run_id=run_id, events=events, meta=run.meta)

    async def append_events(self, agent_id: str, run_id: str, *events: MemoryEvent) -> None:
        _id(agent_id, "agent_id")
        _id(run_id, "run_id")
        run = await self._log.run(run_id)
        fresh = plan_append(agent_id, run_id, run.events if run is not None else [], events)
        if not fresh:
            return
        await self._log.write(fresh)
        # Another writer may have got in between the check and the write: what
        # every reader keeps decides, and a body other than ours fails loudly.
        after = await self._log.run(run_id)
        kept = {e.event_id: body_digest(e) for e in history(run_id, after.events if after else [])}
        for event in fresh:
            if kept.get(event.event_id) != body_digest(event):
                raise EventConflictError(
                    "events",
                    f"run {run_id}: another writer appended another {event.type.value} under "
                    f"the key of event {event.event_id} first; readers keep theirs",
                )


class EventRunStore:
    """:class:`~runwire.stores.protocol.RunStore` on a store log."""

    def __init__(self, log: StoreLog) -> None:
        self._log = log

    async def upsert(self, record: RunRecord) -> None:
        check_record(record)
        run = await self._log.run(record.run_id)
        user_id: str | None = None
        if run is None and record.session_id is not None:
            session = await self._log.session(_id(record.session_id, "record.session_id"))
            if session is not None and session.status == SessionStatus.ENDED.value:
                raise SessionEndedError(
                    "record.session_id",
                    f"session {record.session_id} has ended; it takes no new run",
                )
            user_id = session.user_id if session is not None else None
        planned = plan_upsert(
            record,
            run.row if run is not None else None,
            run.events if run is not None else [],
            user_id=user_id,
        )
        if planned:
            await self._log.write(planned)

    async def load(self, run_id: str) -> RunRecord:
        run = await self._log.run(_id(run_id, "run_id"), with_events=False)
        if run is None:
            raise RunNotFoundError(f"no run {run_id!r} in the run store")
        return record_of(run.row)

    async def list_by_session(
        self, session_id: str, statuses: Sequence[RunStatus] = ()
    ) -> list[RunRecord]:
        _id(session_id, "session_id")
        wanted = {RunStatus(s) for s in statuses}
        rows = await self._log.runs(
            session_id=session_id, status=None, labels=None, limit=10_000, oldest_first=True
        )
        records = [record_of(row) for row in rows]
        return [r for r in records if not wanted or r.status in wanted]

    async def list(
        self,
        *,
        session_id: str | None = None,
        status: RunStatus | None = None,
        labels: Mapping[str, str] | None = None,
        limit: int = 100,
    ) -> list[RunRecord]:
        if status is None:
            log_statuses: list[str | None] = [None]
        else:
            wanted = RunStatus(status)
            log_statuses = [wanted.value]
            if wanted is RunStatus.RUNNING:
                log_statuses.append(LogStatus.AWAITING_TOOLS.value)
        rows = []
        for log_status in log_statuses:
            rows += await self._log.runs(
                session_id=session_id,
                status=log_status,
                labels=labels,
                limit=limit,
                oldest_first=False,
            )
        rows.sort(key=lambda r: (r.started_at, r.run_id), reverse=True)
        return [record_of(row) for row in rows[:limit]]


def session_record(row: SessionRow) -> SessionRecord:
    return SessionRecord(
        session_id=row.session_id,
        status=SessionStatus.ENDED if row.status == "ended" else SessionStatus.ACTIVE,
        created_at=row.created_at,
        last_activity_at=row.last_activity_at,
        user_id=row.user_id,
        metadata=dict(row.metadata),
        labels=dict(row.labels),
        ended_at=row.ended_at,
        run_count=row.run_count,
    )


class EventSessionStore:
    """:class:`~runwire.stores.protocol.SessionStore` on a store log."""

    def __init__(self, log: StoreLog) -> None:
        self._log = log

    def _event(
        self, payload: EventPayload, session_id: str, step: str, at: datetime | None, **more: Any
    ) -> Event:
        try:
            return Event.create(
                payload,
                session_id=session_id,
                producer=PRODUCER,
                occurred_at=at,
                event_id=ids.deterministic_event_id(session_id, f"session-store:{step}", 0),
                **more,
            )
        except InputError as e:
            raise StoreInputError(e.field.removeprefix("payload."), e.reason) from None
        except ValidationError as e:
            first = e.errors()[0]
            field = ".".join(str(p) for p in first["loc"]).removeprefix("payload.")
            raise StoreInputError(field, first["msg"]) from None

    async def create(
        self,
        session_id: str,
        *,
        user_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        created_at: datetime | None = None,
    ) -> SessionRecord:
        _id(session_id, "session_id")
        if user_id is not None:
            _id(user_id, "user_id")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise StoreInputError("metadata", "must be a JSON object")
        row = await self._log.session(session_id)
        if row is not None and row.status == SessionStatus.ENDED.value:
            raise SessionEndedError("session_id", f"session {session_id} has ended")
        if row is not None and user_id is not None and row.user_id not in (None, user_id):
            raise StoreInputError(
                "user_id", f"session {session_id} is {row.user_id!r}'s, not {user_id!r}"
            )
        if row is None or not row.declared:
            try:
                payload = SessionCreated(user_id=user_id, metadata=dict(metadata or {}))
            except ValidationError as e:
                first = e.errors()[0]
                field = ".".join(str(p) for p in first["loc"])
                raise StoreInputError(field, first["msg"]) from None
            await self._log.write(
                [self._event(payload, session_id, "created", created_at, user_id=user_id)]
            )
        return await self.load(session_id)

    async def load(self, session_id: str) -> SessionRecord:
        row = await self._log.session(_id(session_id, "session_id"))
        if row is None:
            raise SessionNotFoundError(f"no session {session_id!r} in the session store")
        return session_record(row)

    async def list(
        self,
        *,
        user_id: str | None = None,
        status: SessionStatus | None = None,
        labels: Mapping[str, str] | None = None,
        active_since: datetime | None = None,
        active_until: datetime | None = None,
        limit: int = 100,
    ) -> list[SessionRecord]:
        rows = await self._log.sessions(
            user_id=user_id,
            status=SessionStatus(status).value if status is not None else None,
            labels=labels,
            since=active_since,
            until=active_until,
            limit=limit,
        )
        return [session_record(row) for row in rows]

    async def end(self, session_id: str, *, ended_at: datetime | None = None) -> SessionRecord:
        record = await self.load(session_id)
        if record.status is SessionStatus.ENDED:
            return record
        await self._log.write([self._event(SessionEnded(), session_id, "ended", ended_at)])
        return await self.load(session_id)


@dataclass(frozen=True)
class Stores:
    """The three stores on one store log."""

    memory: EventMemoryStore
    runs: EventRunStore
    sessions: EventSessionStore

    @classmethod
    def on(cls, log: StoreLog) -> Stores:
        return cls(EventMemoryStore(log), EventRunStore(log), EventSessionStore(log))
