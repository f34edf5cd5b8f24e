"""The in-memory twin of the stores' log: a :class:`~runwire.stores.protocol.StoreLog`
on lists, folded with the run-status and session-index rules.

- Every write is kept in order per run and per session; reads fold them
  with the same rules as the projections (identity, the run-status fold,
  the session-index fold), so the stores on it behave as on the stack:
  another tenant's session event on a session's id changes nothing of it,
  not its activity times either
  (:func:`runwire.contract.session_tenant.foreign_to_session`).
- ``in_memory_stores()`` gives the three stores on one such log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from runwire.contract.events import Event, Stream
from runwire.contract.identity import StreamIds
from runwire.contract.session_tenant import foreign_to_session
from runwire.errors import ContractError, DecodeError
from runwire.projections.runs.fold import RunRow
from runwire.projections.sessions.fold import (
    SessionRow,
    apply_run_event,
    apply_session_event,
    touch,
)
from runwire.stores.appends import history, run_row
from runwire.stores.event_stores import Stores
from runwire.stores.protocol import RunLog

__all__ = ["InMemoryStoreLog", "in_memory_stores"]


class InMemoryStoreLog:
    """The stores' log kept in this process (see the module contract)."""

    def __init__(self) -> None:
        self._runs: dict[str, list[Event]] = {}
        self._sessions: dict[str, list[Event]] = {}

    async def write(self, events: Sequence[Event]) -> None:
        if not events:
            return
        first = events[0]
        if first.stream is Stream.RUN and all(
            e.stream is Stream.RUN and e.run_id == first.run_id for e in events
        ):
            assert first.run_id is not None
            self._runs.setdefault(first.run_id, []).extend(events)
        elif first.stream is Stream.SESSION and all(
            e.stream is Stream.SESSION and e.session_id == first.session_id for e in events
        ):
            assert first.session_id is not None
            self._sessions.setdefault(first.session_id, []).extend(events)
        else:
            raise ContractError("a store write is the events of one run or of one session")

    async def run(self, run_id: str, *, with_events: bool = True) -> RunLog | None:
        events = self._runs.get(run_id, [])
        row = run_row(run_id, events)
        if row is None:
            return None
        return RunLog(row, list(events) if with_events else [], {"events": len(events)})

    async def runs(
        self,
        *,
        session_id: str | None,
        status: str | None,
        labels: Mapping[str, str] | None,
        limit: int,
        oldest_first: bool,
    ) -> list[RunRow]:
        rows = [r for rid, es in self._runs.items() if (r := run_row(rid, es)) is not None]
        rows = [
            r
            for r in rows
            if (session_id is None or r.session_id == session_id)
            and (status is None or r.status == status)
            and (labels is None or dict(labels).items() <= r.labels.items())
        ]
        rows.sort(key=lambda r: (r.started_at, r.run_id), reverse=not oldest_first)
        return rows[:limit]

    def _session_row(self, session_id: str) -> SessionRow | None:
        row: SessionRow | None = None
        seen = StreamIds()
        for event in self._sessions.get(session_id, []):
            try:
                if not seen.admit(event, session_id.encode()):
                    continue
            except DecodeError:
                continue
            if row is not None and foreign_to_session(event, row.declared_tenant):
                continue  # another tenant's: the session index dead-letters it
            row = touch(row, session_id, event.occurred_at)
            if apply_session_event(row, event):
                return None  # deleted
        for run_id, events in self._runs.items():
            for event in history(run_id, events):
                if event.session_id == session_id:
                    row = touch(row, session_id, event.occurred_at)
                    apply_run_event(row, event)
        return row.settle() if row is not None else None

    async def session(self, session_id: str) -> SessionRow | None:
        return self._session_row(session_id)

    async def sessions(
        self,
        *,
        user_id: str | None,
        status: str | None,
        labels: Mapping[str, str] | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
    ) -> list[SessionRow]:
        ids = set(self._sessions)
        for events in self._runs.values():
            ids.update(e.session_id for e in events if e.session_id)
        rows = [r for sid in ids if (r := self._session_row(sid)) is not None]
        rows = [
            r
            for r in rows
            if (user_id is None or r.user_id == user_id)
            and (status is None or r.status == status)
            and (labels is None or dict(labels).items() <= r.labels.items())
            and (since is None or r.last_activity_at >= since)
            and (until is None or r.last_activity_at < until)
        ]
        rows.sort(key=lambda r: (r.last_activity_at, r.session_id), reverse=True)
        return rows[:limit]


def in_memory_stores() -> Stores:
    """The memory, run and session stores on a fresh in-memory log."""
    return Stores.on(InMemoryStoreLog())
