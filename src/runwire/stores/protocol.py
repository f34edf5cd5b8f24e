"""Goa-AI's store contracts as Protocols, and the seam their runwire implementations share.

Contract (the stores, as Goa-AI documents them; ``docs/goa-ai.md`` maps each):
- :class:`MemoryStore`: ``load_run(agent_id, run_id)`` is the run's
  :class:`~runwire.stores.types.Snapshot` (empty for an unknown run, never
  an error); ``append_events(agent_id, run_id, *events)`` appends, all or
  nothing, idempotently (see :mod:`runwire.stores.appends`); on return a
  ``load_run`` anywhere sees the events.
- :class:`RunStore`: ``upsert(record)`` appends the events that bring the
  run to the record (:mod:`runwire.stores.transitions`); ``load(run_id)``
  (:class:`~runwire.stores.types.RunNotFoundError` when unknown);
  ``list_by_session(session_id, statuses)`` in start order; ``list`` by
  session, labels and status, newest first.
- :class:`SessionStore`: ``create`` (idempotent for an active session,
  :class:`~runwire.stores.types.SessionEndedError` for an ended one),
  ``load``, ``list`` (most recently active first, by user, status, labels,
  activity window), ``end`` (idempotent).
- Every write is visible to every read on return (read-your-writes).

The seam (:class:`StoreLog`) is what the stores need of the log: a run's
events in log order, its run-status row, the session index, and an
all-or-nothing write. :class:`~runwire.stores.log_backend.KafkaStoreLog`
is it on the stack, :class:`~runwire.stores.inmem.InMemoryStoreLog` its twin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from runwire.contract.events import Event
from runwire.projections.runs.fold import RunRow
from runwire.projections.sessions.fold import SessionRow
from runwire.stores.types import (
    MemoryEvent,
    RunRecord,
    RunStatus,
    SessionRecord,
    SessionStatus,
    Snapshot,
)

__all__ = ["MemoryStore", "RunLog", "RunStore", "SessionStore", "StoreLog"]


@runtime_checkable
class MemoryStore(Protocol):
    """Goa-AI's ``memory.Store``: a run's history."""

    async def load_run(self, agent_id: str, run_id: str) -> Snapshot: ...

    async def append_events(self, agent_id: str, run_id: str, *events: MemoryEvent) -> None: ...


@runtime_checkable
class RunStore(Protocol):
    """Goa-AI's ``run.Store`` (``UpsertRun`` / ``LoadRun`` / ``ListRunsBySession``)."""

    async def upsert(self, record: RunRecord) -> None: ...

    async def load(self, run_id: str) -> RunRecord: ...

    async def list_by_session(
        self, session_id: str, statuses: Sequence[RunStatus] = ()
    ) -> list[RunRecord]: ...

    async def list(
        self,
        *,
        session_id: str | None = None,
        status: RunStatus | None = None,
        labels: Mapping[str, str] | None = None,
        limit: int = 100,
    ) -> list[RunRecord]: ...


@runtime_checkable
class SessionStore(Protocol):
    """Goa-AI's session store (``CreateSession`` / ``LoadSession`` / ``EndSession``, and a list)."""

    async def create(
        self,
        session_id: str,
        *,
        user_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        created_at: datetime | None = None,
    ) -> SessionRecord: ...

    async def load(self, session_id: str) -> SessionRecord: ...

    async def list(
        self,
        *,
        user_id: str | None = None,
        status: SessionStatus | None = None,
        labels: Mapping[str, str] | None = None,
        active_since: datetime | None = None,
        active_until: datetime | None = None,
        limit: int = 100,
    ) -> list[SessionRecord]: ...

    async def end(self, session_id: str, *, ended_at: datetime | None = None) -> SessionRecord: ...


@dataclass(frozen=True)
class RunLog:
    """A run as the seam gives it: its run-status row, its events (read by position,
    when asked for) and where they lie (``meta``, the snapshot's)."""

    row: RunRow
    events: list[Event]
    meta: Mapping[str, Any] = field(default_factory=dict)


class StoreLog(Protocol):
    """What the stores need of the log (see the module docstring)."""

    async def run(self, run_id: str, *, with_events: bool = True) -> RunLog | None:
        """The run (its events only when asked), None when the log has none."""
        ...

    async def runs(
        self,
        *,
        session_id: str | None,
        status: str | None,
        labels: Mapping[str, str] | None,
        limit: int,
        oldest_first: bool,
    ) -> list[RunRow]: ...

    async def session(self, session_id: str) -> SessionRow | None: ...

    async def sessions(
        self,
        *,
        user_id: str | None,
        status: str | None,
        labels: Mapping[str, str] | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
    ) -> list[SessionRow]: ...

    async def write(self, events: Sequence[Event]) -> None:
        """Write the events of one run (one atomic batch) or of one session; on
        return every read of the seam sees them."""
        ...
