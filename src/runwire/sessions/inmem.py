"""The in-memory twin of the session backend: for tests of code that uses sessions.

It folds the same events with the same pure rules as the projections (the
session index's :mod:`runwire.projections.sessions.fold`, the transcript
ledger), so code tested against it meets the same ids, orders, errors and
visibility on the real stack; the shared contract suite (tests/contract/)
holds both to that. What it does not have: other processes (listeners are
called for writes through this object only), a cache to expire (``keep_for``
does nothing) and persistence.

A session is its tenant's, as in the session index
(:func:`runwire.contract.session_tenant.foreign_to_session`): another
tenant's session event on its id changes nothing (not its activity times
either) and reaches no listener; a ``session_deleted`` of any tenant takes
that tenant's session-scope memory, as the memory store's does.

Forks (:mod:`runwire.sessions.forks`) are planned and read with the same
rules as on the log. Positions are the twin's own: every run event it
accepts gets the next offset of one sequence (as if all runs shared one
partition), so ``fork(at_run=..., at_offset=...)`` and ``fork_points`` work
as on the log, with offsets of this backend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from runwire.contract.events import Event, RunStarted, SessionDeleted
from runwire.contract.session_tenant import foreign_to_session
from runwire.errors import ContractError, NotFoundError
from runwire.memory.inmem import InMemoryMemoryBackend
from runwire.projections.sessions.fold import (
    SessionRow,
    apply_run_event,
    apply_session_event,
    touch,
)
from runwire.sessions.callbacks import changes_of
from runwire.sessions.errors import WriteRefusedError
from runwire.sessions.forks import ForkLog, Lineage, history_of, lineage
from runwire.sessions.planning import SOURCE_LABEL, RunTail, WritePoint, millis
from runwire.sessions.protocol import KnownRun, Listener, RunRecord, SessionInfo, SessionItem
from runwire.transcript.errors import LedgerError
from runwire.transcript.ledger import TranscriptBuilder
from runwire.transcript.messages import Message

__all__ = ["InMemoryBackend", "info_of"]


@dataclass(frozen=True, slots=True)
class _Record:
    """A run event the twin accepted, at its offset (a :class:`~runwire.sessions.forks.Record`)."""

    offset: int
    event: Event


@dataclass
class _Run:
    session_id: str | None
    first_ms: int
    builder: TranscriptBuilder
    recorded: bool
    owner: tuple[str | None, str | None] = (None, None)
    """(user, tenant) of the run's first event: a session serves only its owner's runs."""
    records: list[_Record] = field(default_factory=list)


def info_of(row: SessionRow) -> SessionInfo:
    """A session-index row as the API sees it."""
    return SessionInfo(
        session_id=row.session_id,
        user_id=row.user_id,
        tenant=row.tenant,
        status=row.status,
        metadata=dict(row.metadata),
        labels=dict(row.labels),
        created_at=row.created_at,
        last_activity_at=row.last_activity_at,
        cleared_at=row.cleared_at,
        ended_at=row.ended_at,
        run_count=row.run_count,
        version=row.version,
        writer=row.writer,
        writer_until=row.writer_until,
        version_by=row.version_by,
        parent_session_id=row.parent_session_id,
        fork=row.fork,
    )


def deleted_info(session_id: str, at: datetime) -> SessionInfo:
    return SessionInfo(
        session_id=session_id,
        user_id=None,
        tenant=None,
        status="deleted",
        metadata={},
        labels={},
        created_at=at,
        last_activity_at=at,
        deleted=True,
    )


class InMemoryBackend(InMemoryMemoryBackend):
    """A :class:`~runwire.sessions.protocol.SessionBackend` (and memory backend) on dicts."""

    def __init__(self) -> None:
        super().__init__()
        self._rows: dict[str, SessionRow] = {}
        self._tombstones: dict[str, datetime] = {}
        self._runs: dict[str, _Run] = {}
        self._erased: set[str] = set()
        self._applied: set[str] = set()
        self._listeners: dict[str, list[Listener]] = {}
        self._next_offset = 0

    # -- sessions ----------------------------------------------------------------

    async def describe(self, session_id: str) -> SessionInfo | None:
        if session_id in self._tombstones:
            return deleted_info(session_id, self._tombstones[session_id])
        row = self._rows.get(session_id)
        return None if row is None else info_of(replace(row).settle())

    async def write_session_events(self, events: Sequence[Event]) -> None:
        fresh = [e for e in events if e.event_id not in self._applied]
        heard: list[Event] = []
        for event in fresh:
            self._applied.add(event.event_id)
            sid = event.session_id
            assert sid is not None, "session events carry a session_id"
            if isinstance(event.payload, SessionDeleted):
                # The memory store reads every deletion: it takes its tenant's entries.
                self.forget_session(sid, event.tenant)
            known = self._rows.get(sid)
            if known is not None and foreign_to_session(event, known.declared_tenant):
                continue  # another tenant's: the session index dead-letters it
            heard.append(event)
            if sid in self._tombstones:
                continue
            row = touch(known, sid, event.occurred_at)
            self._rows[sid] = row
            if apply_session_event(row, event):
                del self._rows[sid]
                self._tombstones[sid] = event.occurred_at
        self._notify(heard)

    # -- runs ----------------------------------------------------------------------

    async def write_run(self, events: Sequence[Event], *, base: RunTail | None = None) -> None:
        fresh = [e for e in events if e.event_id not in self._applied]
        if not fresh:
            return
        run_id = fresh[0].run_id
        if run_id is None or any(e.run_id != run_id for e in fresh):
            raise ContractError("write_run takes the events of one run")
        run = self._runs.get(run_id)
        state = run.builder.state if run is not None else None
        builder = TranscriptBuilder(run_id, state=state)
        try:
            builder.apply_all(fresh)
        except LedgerError as e:
            raise WriteRefusedError(f"the transcript ledger refused the write: {e}") from e
        if run is None:
            first = fresh[0]
            run = _Run(
                session_id=first.session_id,
                first_ms=millis(first.occurred_at),
                builder=builder,
                recorded=isinstance(first.payload, RunStarted)
                and SOURCE_LABEL in first.payload.labels,
                owner=(first.user_id, first.tenant),
            )
            self._runs[run_id] = run
        run.builder = builder
        for event in fresh:
            run.records.append(_Record(self._next_offset, event))
            self._next_offset += 1
            self._applied.add(event.event_id)
            sid = event.session_id
            if sid is None or sid in self._tombstones:
                continue
            row = touch(self._rows.get(sid), sid, event.occurred_at)
            self._rows[sid] = row
            apply_run_event(row, event)
        self._notify(fresh)

    def _session_runs(self, session_id: str) -> list[tuple[str, _Run]]:
        row = self._rows.get(session_id)
        settled = None if row is None else replace(row).settle()
        owner = None if settled is None else (settled.user_id, settled.tenant)
        runs = [
            (run_id, run)
            for run_id, run in self._runs.items()
            if run.session_id == session_id
            and run_id not in self._erased
            and (owner is None or run.owner == owner)
        ]
        runs.sort(key=lambda item: (item[1].first_ms, item[0]))
        return runs

    async def tail(self, session_id: str) -> RunTail | None:
        runs = self._session_runs(session_id)
        if not runs:
            return None
        run_id, run = runs[-1]
        return RunTail(run_id, run.first_ms, run.builder.messages(), run.recorded)

    async def write_point(self, session_id: str) -> WritePoint | None:
        info = await self.describe(session_id)
        if info is None:
            return None
        cleared_ms = millis(info.cleared_at) if info.cleared_at else None
        return WritePoint(
            await self.tail(session_id),
            cleared_ms,
            info.deleted,
            info.status == "ended",
            (info.user_id, info.tenant),
        )

    async def history(
        self, session_id: str, after_ms: int | None = None, turns: int | None = None
    ) -> list[RunRecord]:
        return [
            RunRecord(run_id, run.first_ms, run.builder.messages())
            for run_id, run in self._session_runs(session_id)
            if after_ms is None or run.first_ms > after_ms
        ]

    async def items(
        self, session_id: str, after_ms: int | None = None, limit: int | None = None
    ) -> list[SessionItem]:
        return [
            SessionItem(run_id, item.event_id, item.framework, item.item)
            for run_id, run in self._session_runs(session_id)
            if after_ms is None or run.first_ms > after_ms
            for item in run.builder.items()
        ]

    async def find_run(self, run_id: str) -> KnownRun | None:
        run = self._runs.get(run_id)
        return None if run is None else KnownRun(run_id, run.session_id)

    async def erase(self, session_id: str, run_ids: Sequence[str]) -> None:
        self._erased.update(run_ids)

    async def keep_for(self, session_id: str, run_ids: Sequence[str], ttl: int) -> None:
        return None  # nothing is cached here, so nothing expires

    async def idle_sessions(self, before: datetime, limit: int = 500) -> list[SessionInfo]:
        rows = [
            r for r in self._rows.values() if r.status == "active" and r.last_activity_at < before
        ]
        rows.sort(key=lambda r: (r.last_activity_at, r.session_id))
        return [info_of(replace(r).settle()) for r in rows[:limit]]

    # -- forks ---------------------------------------------------------------------------

    async def lineage(self, info: SessionInfo) -> Lineage:
        """The session's fork prefix, then its runs since its last clear."""
        if info.session_id in self._tombstones:
            raise NotFoundError(f"no session {info.session_id!r}")
        after = millis(info.cleared_at) if info.cleared_at else None
        own = [
            run_id
            for run_id, run in self._session_runs(info.session_id)
            if after is None or run.first_ms > after
        ]
        return lineage(info, own)

    def fork_log(self) -> ForkLog:
        return self

    async def records_now(
        self,
        run_ids: Sequence[str],
        bounds: Mapping[str, int] | None = None,
        *,
        skip_erased: bool = False,
    ) -> dict[str, list[_Record]]:
        """Each run's records up to its offset in ``bounds`` (see :class:`ForkLog`)."""
        out: dict[str, list[_Record]] = {}
        for run_id in run_ids:
            run = self._runs.get(run_id)
            if run is None:
                raise NotFoundError(f"run {run_id!r} is not known to this backend")
            if run_id in self._erased or run.session_id in self._tombstones:
                if skip_erased:
                    continue
                raise NotFoundError(f"run {run_id!r} was erased with its session")
            bound = (bounds or {}).get(run_id)
            out[run_id] = [r for r in run.records if bound is None or r.offset <= bound]
        return out

    async def prefix(self, info: SessionInfo) -> list[Message]:
        line = lineage(info, [])
        return [m for _, run in await history_of(self, line) for m in run]

    async def forks_of(self, session_id: str, user_id: str | None) -> list[SessionInfo]:
        """The sessions forked from ``session_id`` (``user_id``'s), newest activity first."""
        settled = [replace(r).settle() for r in self._rows.values()]
        rows = [r for r in settled if r.parent_session_id == session_id and r.user_id == user_id]
        rows.sort(key=lambda r: (r.last_activity_at, r.session_id), reverse=True)
        return [info_of(r) for r in rows]

    # -- listeners -------------------------------------------------------------------

    def listen(self, session_id: str, listener: Listener) -> None:
        self._listeners.setdefault(session_id, []).append(listener)

    def unlisten(self, session_id: str, listener: Listener) -> None:
        found = self._listeners.get(session_id, [])
        if listener in found:
            found.remove(listener)

    def _notify(self, events: Sequence[Event]) -> None:
        by_session: dict[str, list[Event]] = {}
        for event in events:
            if event.session_id is not None and self._listeners.get(event.session_id):
                by_session.setdefault(event.session_id, []).append(event)
        if not by_session:
            return
        loop = asyncio.get_running_loop()
        for session_id, mine in by_session.items():
            row = self._rows.get(session_id)
            tenant = None if row is None else row.declared_tenant or row.first_run_tenant
            for change in changes_of(mine, tenant):
                for listener in list(self._listeners.get(session_id, [])):
                    # Later, as a log reader would: never inside the writer's call.
                    loop.call_soon(listener, change)
