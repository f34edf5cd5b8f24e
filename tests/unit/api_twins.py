"""In-memory twins of what the HTTP API reads and writes through, and an app wired on them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from runwire.contract.events import Event, RunStarted, SessionForked
from runwire.errors import InputError, NotFoundError
from runwire.log import Position
from runwire.log.records import LogPosition
from runwire.projections.runs.fold import Run, RunRow
from runwire.projections.runtime.paging import Page, decode_token, encode_token
from runwire.projections.runtime.waiting import NotCaughtUpError
from runwire.projections.sessions.fold import Session, SessionRow
from runwire.projections.sessions.owner import Owner
from runwire.projections.transcripts.history import (
    RunAsOf,
    TranscriptHistory,
    cut_at_turn,
    messages_json,
)
from runwire.projections.usage.inmem import InMemoryUsage
from runwire.services.api.app import create_app
from runwire.services.api.auth import KeyRing
from runwire.services.api.backends import Options
from runwire.services.api.ports import StartedRun
from runwire.settings import Settings
from runwire.transcript.messages import Message, ToolResultPart

ALICE = "alice-key-0123456789abcdef"
ALICE_READ_ONLY = "alice-view-0123456789abcdef"
BOB = "bob-key-0123456789abcdef"
KEYS = f"{ALICE}:alice,{ALICE_READ_ONLY}:alice:read,{BOB}:bob"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
TOPIC = "run-events"


def make_run(
    run_id: str,
    user_id: str | None,
    session_id: str | None = None,
    *,
    minute: int = 0,
    **changes: Any,
) -> Run:
    event = Event.create(RunStarted(), run_id=run_id, occurred_at=T0 + timedelta(minutes=minute))
    row = RunRow.new(event, partition=0, offset=minute)
    return dataclasses.replace(row, user_id=user_id, session_id=session_id, **changes)


def make_session(
    session_id: str, user_id: str | None, *, minute: int = 0, **changes: Any
) -> Session:
    row = SessionRow.new(session_id, T0 + timedelta(minutes=minute))
    return dataclasses.replace(row, user_id=user_id, **changes)


def _page(items: list[Any], at: str, key: str, page: str | None, limit: int) -> Page[Any]:
    if page is not None:
        after = decode_token(page)
        items = [i for i in items if (getattr(i, at), getattr(i, key)) < after]
    token = None
    if len(items) > limit:
        items = items[:limit]
        token = encode_token(getattr(items[-1], at), getattr(items[-1], key))
    return Page(items=items, next_page=token)


class Twins:
    """The run-status store, session index, transcript cache and run control, in memory."""

    def __init__(self) -> None:
        self.runs: dict[str, Run] = {}
        self.sessions: dict[str, Session] = {}
        self.deleted: set[str] = set()
        self.messages: dict[str, list[Message]] = {}
        self.log: dict[str, list[Event]] = {}
        self.calls: list[tuple[str, Any]] = []
        self.caught_up = True
        self.offset = 100
        self.usage = InMemoryUsage(TOPIC, "session-events")

    def add(self, *items: Run | Session) -> None:
        for item in items:
            if isinstance(item, RunRow):
                self.runs[item.run_id] = item
            else:
                self.sessions[item.session_id] = item

    # RunReader + SessionReader (the two wait_for are one)
    async def wait_for(self, position: LogPosition, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        if not self.caught_up:
            raise NotCaughtUpError(f"behind {position}")

    async def is_deleted(self, session_id: str) -> bool:
        return session_id in self.deleted

    # TranscriptReader
    async def get(self, run_id: str) -> list[Message]:
        if run_id not in self.messages:
            raise NotFoundError(run_id)
        return self.messages[run_id]

    async def get_at(
        self, run_id: str, *, offset: int | None = None, turn: int | None = None
    ) -> RunAsOf:
        messages = await self.get(run_id)
        if offset is not None or turn is None:
            raise InputError("offset", "the twin keeps no log positions; ask by turn")
        past = cut_at_turn(messages, turn, f"run {run_id}")
        return RunAsOf(run_id, 0, -1, messages_json(past), past, turn)

    async def visible_runs(self, session_id: str, owner: Owner | None = None) -> list[str]:
        runs = sorted(
            (
                r
                for r in self.runs.values()
                if r.session_id == session_id
                and (owner is None or Owner(r.user_id, r.tenant) == owner)
            ),
            key=lambda r: (r.started_at, r.run_id),
        )
        return [r.run_id for r in runs]

    def history(self) -> TranscriptHistory:
        # The twin keeps no log: routes that plan from the log are tested on the stack.
        raise NotImplementedError("the API twins keep no log; forks are tested on the stack")

    # RunControl
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
        self.offset += 1
        run_id = f"run-{self.offset}"
        self.calls.append(("start", (run_id, agent_id, prompt, session_id, user_id, dict(labels))))
        self.add(make_run(run_id, user_id, session_id, minute=self.offset))
        return StartedRun(run_id, Position(TOPIC, 0, self.offset))

    async def fork_session(
        self,
        session_id: str,
        forked: SessionForked,
        user_id: str,
        metadata: dict[str, Any],
        *,
        tenant: str | None = None,
    ) -> Position:
        self.offset += 1
        self.calls.append(("fork", (session_id, forked.parent_session_id, user_id)))
        self.add(make_session(session_id, user_id, minute=self.offset))
        return Position(TOPIC, 0, self.offset)

    async def declare_session(
        self, session_id: str, user_id: str, *, tenant: str | None = None
    ) -> Position:
        self.offset += 1
        self.calls.append(("declare", (session_id, user_id)))
        if session_id not in self.sessions:  # the first declaration owns the session
            self.add(make_session(session_id, user_id, minute=self.offset))
        return Position(TOPIC, 0, self.offset)

    async def cancel(self, run: Run, reason: str | None) -> Position:
        self.calls.append(("cancel", (run.run_id, reason)))
        return Position(TOPIC, 0, 7)

    async def resume(self, run: Run, results: Sequence[ToolResultPart]) -> list[Position]:
        self.calls.append(("resume", (run.run_id, list(results))))
        return [Position(TOPIC, 0, 8 + i) for i in range(len(results))]

    async def decide(
        self, run: Run, tool_use_id: str, *, approved: bool, reason: str | None, decided_by: str
    ) -> Position:
        self.calls.append(("decide", (run.run_id, tool_use_id, approved, reason, decided_by)))
        return Position(TOPIC, 0, 9)

    async def events_of(self, run: Run) -> AsyncIterator[Event]:
        for event in self.log.get(run.run_id, []):
            await asyncio.sleep(0)
            yield event

    def events(self, run: Run, *, live: bool = False) -> AsyncIterator[Event]:
        return self.events_of(run)


class RunsTwin:
    def __init__(self, twins: Twins) -> None:
        self._t = twins

    async def tree(self, run_id: str, *, max_runs: int = 1000) -> list[tuple[int, Run]]:
        root = await self.get(run_id)
        out: list[tuple[int, Run]] = []

        def walk(run: Run, depth: int) -> None:
            out.append((depth, run))
            for child in sorted(self._t.runs.values(), key=lambda r: r.run_id):
                if child.parent_run_id == run.run_id:
                    walk(child, depth + 1)

        walk(root, 0)
        return out[:max_runs]

    async def get(self, run_id: str) -> Run:
        if run_id not in self._t.runs:
            raise NotFoundError(f"run {run_id!r} is not in the run-status projection")
        return self._t.runs[run_id]

    async def list(
        self,
        *,
        session_id: str | None = None,
        status: str | None = None,
        page: str | None = None,
        limit: int = 50,
        oldest_first: bool = False,
    ) -> Page[Run]:
        assert not oldest_first or page is None, "the twin pages newest first only"
        items = [
            r
            for r in self._t.runs.values()
            if (session_id is None or r.session_id == session_id)
            and (status is None or r.status == status)
        ]
        items.sort(key=lambda r: (r.started_at, r.run_id), reverse=not oldest_first)
        return _page(items, "started_at", "run_id", page, limit)

    async def wait_for(self, position: LogPosition, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        await self._t.wait_for(position, timeout)


class SessionsTwin:
    def __init__(self, twins: Twins) -> None:
        self._t = twins

    async def get(self, session_id: str) -> Session:
        if session_id not in self._t.sessions:
            raise NotFoundError(f"session {session_id!r} is not in the session index")
        return self._t.sessions[session_id]

    async def list(
        self,
        *,
        user_id: str | None = None,
        status: str | None = None,
        labels: Mapping[str, str] | None = None,
        page: str | None = None,
        limit: int = 50,
    ) -> Page[Session]:
        items = [
            s
            for s in self._t.sessions.values()
            if (user_id is None or s.user_id == user_id)
            and (status is None or s.status == status)
            and all(s.labels.get(k) == v for k, v in (labels or {}).items())
        ]
        items.sort(key=lambda s: (s.last_activity_at, s.session_id), reverse=True)
        return _page(items, "last_activity_at", "session_id", page, limit)

    async def is_deleted(self, session_id: str) -> bool:
        return await self._t.is_deleted(session_id)

    async def wait_for(self, position: LogPosition, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        await self._t.wait_for(position, timeout)


def twin_app(twins: Twins, keys: str = KEYS) -> FastAPI:
    return create_app(
        Settings(),
        keys=KeyRing.parse(keys),
        runs=RunsTwin(twins),
        sessions=SessionsTwin(twins),
        transcripts=twins,
        control=twins,
        usage=twins.usage,
        options=Options(visibility_timeout=0.1, keepalive_seconds=0.05),
    )


@contextlib.asynccontextmanager
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of ``app`` in this process, its lifespan running."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api.test"
        ) as http,
    ):
        yield http


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
