"""The seams of the API: what it reads and what it writes through.

The production implementations are the projections' read APIs
(:class:`~runwire.projections.runs.reader.RunStore`,
:class:`~runwire.projections.sessions.reader.SessionIndex`,
:class:`~runwire.projections.transcripts.reader.TranscriptCache`) and
:class:`ClientRunControl` over the runs API; unit tests pass in-memory twins.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from runwire.client import Client
from runwire.contract.events import Event, SessionForked
from runwire.log import Position
from runwire.log.records import LogPosition
from runwire.projections.runs.fold import Run
from runwire.projections.runtime.paging import Page
from runwire.projections.sessions.fold import Session
from runwire.projections.sessions.owner import Owner
from runwire.projections.transcripts.history import RunAsOf, TranscriptHistory
from runwire.sessions.admin import ErasureReceipt, UserErasureReceipt, erase_any, erase_user
from runwire.sessions.protocol import SessionBackend
from runwire.transcript.messages import Message, ToolResultPart

__all__ = [
    "ClientRunControl",
    "LogSessionEraser",
    "RunControl",
    "RunReader",
    "SessionEraser",
    "SessionReader",
    "StartedRun",
    "TranscriptReader",
]


class RunReader(Protocol):
    """The run-status store as the API reads it."""

    async def get(self, run_id: str) -> Run:
        """The run; ``NotFoundError`` when unknown."""
        ...

    async def list(
        self,
        *,
        session_id: str | None = None,
        status: str | None = None,
        page: str | None = None,
        limit: int = 50,
        oldest_first: bool = False,
    ) -> Page[Run]:
        """Runs matching the filters, newest first unless ``oldest_first``, keyset-paged."""
        ...

    async def wait_for(self, position: LogPosition, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Return once the store has applied ``position``; ``NotCaughtUpError`` on timeout."""
        ...

    async def tree(self, run_id: str, *, max_runs: int = 1000) -> Sequence[tuple[int, Run]]:
        """The run and its descendants as ``(depth, run)``, depth first."""
        ...


class SessionReader(Protocol):
    """The session index as the API reads it."""

    async def get(self, session_id: str) -> Session:
        """The session; ``NotFoundError`` when unknown or deleted."""
        ...

    async def list(
        self,
        *,
        user_id: str | None = None,
        status: str | None = None,
        labels: Mapping[str, str] | None = None,
        page: str | None = None,
        limit: int = 50,
    ) -> Page[Session]:
        """Sessions matching the filters, most recently active first, keyset-paged."""
        ...

    async def is_deleted(self, session_id: str) -> bool:
        """True when the session was deleted (its id is never reused)."""
        ...

    async def wait_for(self, position: LogPosition, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Return once the index has applied ``position``; ``NotCaughtUpError`` on timeout."""
        ...


class TranscriptReader(Protocol):
    """The transcript cache as the API reads it."""

    async def get(self, run_id: str) -> list[Message]:
        """The run's canonical messages; ``NotFoundError`` when unknown."""
        ...

    async def get_at(
        self, run_id: str, *, offset: int | None = None, turn: int | None = None
    ) -> RunAsOf:
        """The run as of a log offset or the end of a turn, from the log
        (:mod:`runwire.projections.transcripts.history`)."""
        ...

    async def visible_runs(self, session_id: str, owner: Owner | None = None) -> list[str]:
        """The session's runs after its clear point, oldest first; with ``owner`` only
        that owner's."""
        ...

    def history(self) -> TranscriptHistory:
        """Time travel over the log (what a fork is planned with)."""
        ...


@dataclass(frozen=True, slots=True)
class StartedRun:
    """A run the log now holds: its id and where its first event lies."""

    run_id: str
    position: Position


class RunControl(Protocol):
    """Writes to the log on behalf of a caller, and the live read of one run's events."""

    async def start_run(
        self,
        *,
        agent_id: str | None,
        prompt: str,
        session_id: str,
        user_id: str,
        labels: Mapping[str, str],
        turn_id: str | None,
        tenant: str | None = None,
    ) -> StartedRun:
        """Publish ``run_started`` and the prompt as one atomic batch."""
        ...

    async def declare_session(
        self, session_id: str, user_id: str, *, tenant: str | None = None
    ) -> Position:
        """Publish ``session_created`` for (``tenant``, ``user_id``) (the first one in the
        session's partition makes the owner)."""
        ...

    async def fork_session(
        self,
        session_id: str,
        forked: SessionForked,
        user_id: str,
        metadata: dict[str, Any],
        *,
        tenant: str | None = None,
    ) -> Position:
        """Publish a fork owned by (``tenant``, ``user_id``) (``session_created`` + ``forked``)."""
        ...

    async def cancel(self, run: Run, reason: str | None) -> Position:
        """Publish ``run_canceled`` into ``run`` (with its session, user and tenant, as
        every write into a run below)."""
        ...

    async def resume(self, run: Run, results: Sequence[ToolResultPart]) -> list[Position]:
        """Publish tool results (deterministic ids: a repeat is a harmless duplicate)."""
        ...

    async def decide(
        self, run: Run, tool_use_id: str, *, approved: bool, reason: str | None, decided_by: str
    ) -> Position:
        """Publish ``approval_decided`` for a tool call held for approval."""
        ...

    def events(self, run: Run, *, live: bool = False) -> AsyncIterator[Event]:
        """The run's events in log order from its first one, live; ends after its terminal event.

        With ``live``, its live events woven in (:meth:`runwire.client.RunHandle.stream`)."""
        ...


class ClientRunControl:
    """:class:`RunControl` over a started :class:`~runwire.client.Client`."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def start_run(
        self,
        *,
        agent_id: str | None,
        prompt: str,
        session_id: str,
        user_id: str,
        labels: Mapping[str, str],
        turn_id: str | None,
        tenant: str | None = None,
    ) -> StartedRun:
        handle = await self._client.run(
            agent_id,
            prompt,
            session_id=session_id,
            user_id=user_id,
            tenant=tenant,
            labels=labels,
            turn_id=turn_id,
        )
        assert handle.first_offset is not None  # a run just published knows where it starts
        topic = self._client.settings.run_events
        return StartedRun(handle.run_id, Position(topic, handle.partition, handle.first_offset))

    async def declare_session(
        self, session_id: str, user_id: str, *, tenant: str | None = None
    ) -> Position:
        return await self._client.declare_session(session_id, user_id=user_id, tenant=tenant)

    async def fork_session(
        self,
        session_id: str,
        forked: SessionForked,
        user_id: str,
        metadata: dict[str, Any],
        *,
        tenant: str | None = None,
    ) -> Position:
        return await self._client.fork_session(
            session_id, forked, user_id=user_id, tenant=tenant, metadata=metadata
        )

    async def cancel(self, run: Run, reason: str | None) -> Position:
        return await self._client.cancel(run.run_id, reason=reason, first_offset=run.first_offset)

    async def resume(self, run: Run, results: Sequence[ToolResultPart]) -> list[Position]:
        return await self._client.resume(run.run_id, results, first_offset=run.first_offset)

    async def decide(
        self, run: Run, tool_use_id: str, *, approved: bool, reason: str | None, decided_by: str
    ) -> Position:
        return await self._client.decide(
            run.run_id,
            tool_use_id,
            approved=approved,
            reason=reason,
            decided_by=decided_by,
            first_offset=run.first_offset,
        )

    def events(self, run: Run, *, live: bool = False) -> AsyncIterator[Event]:
        handle = self._client.handle(
            run.run_id, session_id=run.session_id, first_offset=run.first_offset
        )
        if live:
            return handle.stream(from_start=True)
        return handle.events(from_start=True, until_end=True, follow=True)


class SessionEraser(Protocol):
    """Erasure of a session or a user for good: projections, then keys (docs/sealing.md)."""

    async def erase(self, session_id: str) -> ErasureReceipt:
        """Erase the session; the receipt names the key ids destroyed."""
        ...

    async def erase_user(self, user_id: str, tenant: str | None) -> UserErasureReceipt:
        """Erase the user: its sessions, its user memory, their keys."""
        ...


class LogSessionEraser:
    """:class:`SessionEraser` over a started :class:`~runwire.sessions.log_backend.LogBackend`
    of a deployment with sealing on."""

    def __init__(self, backend: SessionBackend) -> None:
        self._backend = backend

    async def erase(self, session_id: str) -> ErasureReceipt:
        return await erase_any(self._backend, session_id)

    async def erase_user(self, user_id: str, tenant: str | None) -> UserErasureReceipt:
        return await erase_user(self._backend, user_id, tenant)
