"""The Goa-AI store contracts: what the memory, run and session stores must do.

Subclasses provide ``stores`` (an object with started ``memory``, ``runs``
and ``sessions`` stores on one log); the in-memory twin and the stack run
the same suite.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from runwire.errors import NotFoundError
from runwire.stores import (
    EventConflictError,
    MemoryEvent,
    MemoryEventType,
    RunNotFoundError,
    RunRecord,
    RunStatus,
    SessionEndedError,
    SessionNotFoundError,
    SessionStatus,
    Snapshot,
    StoreInputError,
    build_messages_from_events,
)
from runwire.stores.protocol import MemoryStore, RunStore, SessionStore

T = MemoryEventType


def at(seconds: float) -> datetime:
    """A time ``seconds`` after a fixed base (milliseconds: what runwire keeps)."""
    return datetime(2026, 1, 5, 9, 0, tzinfo=UTC) + timedelta(seconds=seconds)


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def tool_turn(start: float = 0) -> list[MemoryEvent]:
    """A tool-using turn in the stored form (what ``load_run`` gives back)."""
    return [
        MemoryEvent(T.USER_MESSAGE, at(start), {"message": "what is 6*7?"}, {"role": "user"}),
        MemoryEvent(T.PLANNER_NOTE, at(start + 1), {"note": "arithmetic: call the calculator"}, {}),
        MemoryEvent(T.THINKING, at(start + 2), {"text": "compute it", "signature": "sig-1"}),
        MemoryEvent(T.ASSISTANT_MESSAGE, at(start + 3), {"message": "Let me compute."}),
        MemoryEvent(
            T.TOOL_CALL,
            at(start + 4),
            {"tool_call_id": "c1", "tool_name": "calc", "payload": {"expr": "6*7"}},
            {"tool": "calc"},
        ),
        MemoryEvent(
            T.TOOL_RESULT,
            at(start + 5),
            {"tool_call_id": "c1", "tool_name": "calc", "result": {"value": 42}},
        ),
        MemoryEvent(T.ASSISTANT_MESSAGE, at(start + 6), {"message": "It is 42."}),
    ]


BAD_APPENDS: list[tuple[str, list[MemoryEvent], str]] = [
    ("unknown type", [MemoryEvent("user_said", at(10), {"message": "hi"})], "events[0].type"),
    (
        "timestamp going backwards",
        [
            MemoryEvent(T.USER_MESSAGE, at(10), {"message": "later"}),
            MemoryEvent(T.PLANNER_NOTE, at(9), {"note": "earlier"}),
        ],
        "events[1].timestamp",
    ),
    (
        "before the run's history",
        [MemoryEvent(T.USER_MESSAGE, at(-5), {"message": "too early"})],
        "events[0].timestamp",
    ),
    (
        "naive timestamp",
        [MemoryEvent(T.USER_MESSAGE, datetime(2026, 1, 5, 9, 1), {"message": "hi"})],
        "events[0].timestamp",
    ),
    (
        "data not JSON (NaN)",
        [
            MemoryEvent(
                T.TOOL_CALL,
                at(10),
                {"tool_call_id": "n1", "tool_name": "calc", "payload": {"x": float("nan")}},
            )
        ],
        "events[0].data.payload.x",
    ),
    (
        "data not JSON (an object)",
        [MemoryEvent(T.USER_MESSAGE, at(10), {"message": "hi", "when": object()})],
        "events[0].data.when",
    ),
    ("data not an object", [MemoryEvent(T.USER_MESSAGE, at(10), "hi")], "events[0].data"),  # type: ignore[arg-type]
    (
        "a field runwire would not keep",
        [MemoryEvent(T.USER_MESSAGE, at(10), {"message": "hi", "structured": {"a": 1}})],
        "events[0].data.structured",
    ),
    (
        "a required field missing",
        [MemoryEvent(T.TOOL_CALL, at(10), {"tool_name": "calc"})],
        "events[0].data.tool_call_id",
    ),
    (
        "a result for no call",
        [
            MemoryEvent(
                T.TOOL_RESULT, at(10), {"tool_call_id": "zz", "tool_name": "calc", "result": 1}
            )
        ],
        "events[0]",
    ),
    (
        "a result naming another tool",
        [
            MemoryEvent(
                T.TOOL_CALL, at(10), {"tool_call_id": "c2", "tool_name": "calc", "payload": {}}
            ),
            MemoryEvent(
                T.TOOL_RESULT, at(11), {"tool_call_id": "c2", "tool_name": "search", "result": 1}
            ),
        ],
        "events[1].data.tool_name",
    ),
    (
        "an id over the limit",
        [MemoryEvent(T.TOOL_CALL, at(10), {"tool_call_id": "x" * 300, "tool_name": "calc"})],
        "events[0].data.tool_call_id",
    ),
    (
        "a label over the limit",
        [MemoryEvent(T.USER_MESSAGE, at(10), {"message": "hi"}, {"k": "v" * 2000})],
        "events[0].labels['k']",
    ),
    (
        "labels not text",
        [MemoryEvent(T.USER_MESSAGE, at(10), {"message": "hi"}, {"n": 1})],  # type: ignore[dict-item]
        "events[0].labels",
    ),
]
"""Appends refused after ``tool_turn()`` (whose last event is at 6 s), and the field named."""


class StoresContract:
    """Every implementation of the three stores passes these."""

    @pytest.fixture
    def stores(self) -> Any:  # pragma: no cover - provided by subclasses
        raise NotImplementedError

    # -- the memory store ------------------------------------------------------------

    async def test_they_are_the_protocols(self, stores: Any) -> None:
        assert isinstance(stores.memory, MemoryStore)
        assert isinstance(stores.runs, RunStore)
        assert isinstance(stores.sessions, SessionStore)

    async def test_an_unknown_run_is_an_empty_snapshot(self, stores: Any) -> None:
        run = fresh("run")
        snapshot = await stores.memory.load_run("agent", run)
        assert snapshot == Snapshot(agent_id="agent", run_id=run)
        assert snapshot.events == ()

    async def test_appended_events_load_back_in_order(self, stores: Any) -> None:
        run = fresh("run")
        events = tool_turn()
        await stores.memory.append_events("agent", run, *events[:3])
        await stores.memory.append_events("agent", run, *events[3:])
        snapshot = await stores.memory.load_run("agent", run)
        assert (snapshot.agent_id, snapshot.run_id) == ("agent", run)
        assert list(snapshot.events) == events
        assert snapshot.latest(T.ASSISTANT_MESSAGE) == events[-1]
        assert snapshot.filter_by_type(T.TOOL_CALL) == [events[4]]

    async def test_stored_form_fills_defaults_and_keeps_bytes(self, stores: Any) -> None:
        run = fresh("run")
        redacted = base64.b64encode(b"\x00\xffopaque").decode()
        given = [
            MemoryEvent(T.USER_MESSAGE, at(0).replace(microsecond=123456), {"message": "hi"}),
            MemoryEvent(T.THINKING, at(1), {"redacted": redacted, "content_index": 0}),
            MemoryEvent(T.THINKING, at(2), {"text": "t", "signature": "s", "final": True}),
            MemoryEvent(T.TOOL_CALL, at(3), {"tool_call_id": "a", "tool_name": "x"}),
            MemoryEvent(
                T.TOOL_RESULT,
                at(4),
                {"tool_call_id": "a", "tool_name": "x", "error_message": "boom"},
            ),
        ]
        await stores.memory.append_events("agent", run, *given)
        loaded = (await stores.memory.load_run("agent", run)).events
        assert loaded[0].timestamp == at(0).replace(microsecond=123000)
        assert loaded[1].data == {"redacted": redacted}
        assert loaded[2].data == {"text": "t", "signature": "s"}
        assert loaded[3].data == {"tool_call_id": "a", "tool_name": "x"}
        assert loaded[4].data == {"tool_call_id": "a", "tool_name": "x", "error_message": "boom"}

    async def test_appending_again_is_idempotent(self, stores: Any) -> None:
        run = fresh("run")
        events = tool_turn()
        await stores.memory.append_events("agent", run, *events)
        await stores.memory.append_events("agent", run, *events)  # a retry
        await stores.memory.append_events("agent", run, *events[2:5])  # part of one
        assert list((await stores.memory.load_run("agent", run)).events) == events

    async def test_a_conflicting_body_for_a_key_fails_loudly(self, stores: Any) -> None:
        run = fresh("run")
        events = tool_turn()
        await stores.memory.append_events("agent", run, *events)
        changed = replace(events[0], data={"message": "what is 7*6?"})
        with pytest.raises(EventConflictError) as raised:
            await stores.memory.append_events("agent", run, changed)
        assert raised.value.field == "events[0]"
        other_call = replace(events[4], data={**events[4].data, "payload": {"expr": "1+1"}})
        with pytest.raises(EventConflictError):
            await stores.memory.append_events("agent", run, other_call)
        assert list((await stores.memory.load_run("agent", run)).events) == events

    @pytest.mark.parametrize(
        ("case", "bad", "field"), BAD_APPENDS, ids=[c for c, _, _ in BAD_APPENDS]
    )
    async def test_bad_input_names_the_field_and_appends_nothing(
        self, stores: Any, case: str, bad: list[MemoryEvent], field: str
    ) -> None:
        run = fresh("run")
        events = tool_turn()
        await stores.memory.append_events("agent", run, *events)
        good = MemoryEvent(T.PLANNER_NOTE, at(7), {"note": "fine on its own"})
        with pytest.raises(StoreInputError) as raised:
            await stores.memory.append_events("agent", run, good, *bad)
        shifted = field.replace(field[: field.index("]") + 1], _shift(field))
        assert raised.value.field == shifted, str(raised.value)
        assert list((await stores.memory.load_run("agent", run)).events) == events

    async def test_another_agents_run_is_refused_and_not_shown(self, stores: Any) -> None:
        run = fresh("run")
        events = tool_turn()
        await stores.memory.append_events("agent-a", run, *events)
        late = MemoryEvent(T.USER_MESSAGE, at(20), {"message": "hijack"})
        with pytest.raises(StoreInputError) as raised:
            await stores.memory.append_events("agent-b", run, late)
        assert raised.value.field == "agent_id"
        assert "agent-a" in str(raised.value)
        assert (await stores.memory.load_run("agent-b", run)).events == ()
        assert list((await stores.memory.load_run("agent-a", run)).events) == events

    @pytest.mark.parametrize("field", ["agent_id", "run_id"])
    async def test_empty_ids_are_refused(self, stores: Any, field: str) -> None:
        args = {"agent_id": "agent", "run_id": fresh("run"), field: ""}
        with pytest.raises(StoreInputError) as raised:
            await stores.memory.append_events(args["agent_id"], args["run_id"], *tool_turn())
        assert raised.value.field == field

    async def test_messages_built_from_a_snapshot(self, stores: Any) -> None:
        run = fresh("run")
        await stores.memory.append_events("agent", run, *tool_turn())
        snapshot = await stores.memory.load_run("agent", run)
        messages = build_messages_from_events(snapshot.events)
        shape = [(m.role, [p.kind for p in m.parts]) for m in messages]
        assert shape == [
            ("user", ["text"]),
            ("assistant", ["thinking", "text", "tool_use"]),
            ("user", ["tool_result"]),
            ("assistant", ["text"]),
        ]
        # The planner's note is for people, never for a model.
        assert all("calculator" not in m.model_dump_json() for m in messages)

    # -- the run store ---------------------------------------------------------------

    async def test_upsert_then_load(self, stores: Any) -> None:
        session = fresh("s")
        run = fresh("run")
        record = RunRecord(
            agent_id="agent",
            run_id=run,
            session_id=session,
            turn_id="turn-1",
            status=RunStatus.PENDING,
            started_at=at(0),
            updated_at=at(0),
            labels={"tenant": "acme", "priority": "high"},
        )
        await stores.runs.upsert(record)
        assert await stores.runs.load(run) == record
        await stores.runs.upsert(record)  # again: nothing changes
        assert await stores.runs.load(run) == record

    async def test_a_run_goes_through_its_statuses(self, stores: Any) -> None:
        run = fresh("run")
        base = RunRecord(agent_id="agent", run_id=run, session_id=fresh("s"))
        for i, status in enumerate(
            [RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.RUNNING]
        ):
            await stores.runs.upsert(replace(base, status=status, updated_at=at(i)))
            loaded = await stores.runs.load(run)
            assert loaded.status is status
            assert loaded.updated_at == at(i)
        await stores.runs.upsert(replace(base, status=RunStatus.RUNNING, updated_at=at(9)))
        assert (await stores.runs.load(run)).updated_at == at(3)  # idempotent: nothing written
        await stores.runs.upsert(replace(base, status=RunStatus.COMPLETED, updated_at=at(5)))
        assert (await stores.runs.load(run)).status is RunStatus.COMPLETED

    async def test_a_new_run_can_be_recorded_ended(self, stores: Any) -> None:
        run = fresh("run")
        record = RunRecord(agent_id="agent", run_id=run, status=RunStatus.FAILED)
        await stores.runs.upsert(record)
        assert (await stores.runs.load(run)).status is RunStatus.FAILED

    @pytest.mark.parametrize(
        ("status", "change", "field"),
        [
            (RunStatus.COMPLETED, {"status": RunStatus.RUNNING}, "record.status"),
            (RunStatus.CANCELED, {"status": RunStatus.COMPLETED}, "record.status"),
            (RunStatus.RUNNING, {"status": RunStatus.PENDING}, "record.status"),
            (RunStatus.RUNNING, {"status": "exploded"}, "record.status"),
            (RunStatus.RUNNING, {"agent_id": "other"}, "record.agent_id"),
            (RunStatus.RUNNING, {"session_id": "other"}, "record.session_id"),
            (RunStatus.RUNNING, {"turn_id": "other"}, "record.turn_id"),
            (RunStatus.RUNNING, {"labels": {"tenant": "evil"}}, "record.labels"),
            (RunStatus.RUNNING, {"agent_id": ""}, "record.agent_id"),
        ],
    )
    async def test_impossible_upserts_are_refused(
        self, stores: Any, status: RunStatus, change: dict[str, Any], field: str
    ) -> None:
        run = fresh("run")
        record = RunRecord(
            agent_id="agent",
            run_id=run,
            session_id=fresh("s"),
            turn_id="t1",
            status=status,
            labels={"tenant": "acme"},
        )
        await stores.runs.upsert(record)
        before = await stores.runs.load(run)
        with pytest.raises(StoreInputError) as raised:
            await stores.runs.upsert(replace(record, **change))
        assert raised.value.field == field, str(raised.value)
        assert await stores.runs.load(run) == before

    async def test_an_unknown_run_is_not_found(self, stores: Any) -> None:
        with pytest.raises(RunNotFoundError):
            await stores.runs.load(fresh("run"))
        assert issubclass(RunNotFoundError, NotFoundError)

    async def test_runs_by_session_labels_and_status(self, stores: Any) -> None:
        session, other = fresh("s"), fresh("s")
        runs = [fresh("run") for _ in range(3)]
        for i, (run, status) in enumerate(
            zip(runs, [RunStatus.COMPLETED, RunStatus.RUNNING, RunStatus.PENDING], strict=True)
        ):
            await stores.runs.upsert(
                RunRecord(
                    agent_id="agent",
                    run_id=run,
                    session_id=session,
                    status=status,
                    started_at=at(i),
                    labels={"tier": "gold" if i != 1 else "free"},
                )
            )
        await stores.runs.upsert(
            RunRecord(agent_id="agent", run_id=fresh("run"), session_id=other, started_at=at(9))
        )
        by_session = await stores.runs.list_by_session(session)
        assert [r.run_id for r in by_session] == runs  # start order
        running = await stores.runs.list_by_session(session, [RunStatus.RUNNING])
        assert [r.run_id for r in running] == [runs[1]]
        gold = await stores.runs.list(session_id=session, labels={"tier": "gold"})
        assert [r.run_id for r in gold] == [runs[2], runs[0]]  # newest first
        pending = await stores.runs.list(session_id=session, status=RunStatus.PENDING)
        assert [r.run_id for r in pending] == [runs[2]]
        assert await stores.runs.list_by_session(fresh("s")) == []

    async def test_memory_and_runs_are_one_run(self, stores: Any) -> None:
        session = fresh("s")
        run = fresh("run")
        await stores.runs.upsert(
            RunRecord(agent_id="agent", run_id=run, session_id=session, status=RunStatus.RUNNING)
        )
        await stores.memory.append_events("agent", run, *tool_turn())
        with pytest.raises(StoreInputError):
            await stores.memory.append_events("intruder", run, *tool_turn(10))
        await stores.runs.upsert(
            RunRecord(agent_id="agent", run_id=run, session_id=session, status=RunStatus.COMPLETED)
        )
        assert (await stores.runs.load(run)).status is RunStatus.COMPLETED
        assert len((await stores.memory.load_run("agent", run)).events) == len(tool_turn())

    # -- the session store -----------------------------------------------------------

    async def test_create_load_end(self, stores: Any) -> None:
        session = fresh("s")
        created = await stores.sessions.create(
            session, user_id="alice", metadata={"title": "taxes", "n": 1}, created_at=at(0)
        )
        assert created.session_id == session
        assert created.status is SessionStatus.ACTIVE
        assert (created.user_id, dict(created.metadata)) == ("alice", {"title": "taxes", "n": 1})
        assert created.created_at == at(0)
        assert await stores.sessions.load(session) == created
        assert await stores.sessions.create(session, user_id="alice") == created  # idempotent
        with pytest.raises(StoreInputError) as taken:
            await stores.sessions.create(session, user_id="mallory")
        assert taken.value.field == "user_id"
        ended = await stores.sessions.end(session, ended_at=at(5))
        assert ended.status is SessionStatus.ENDED
        assert ended.ended_at == at(5)
        assert await stores.sessions.end(session) == ended  # idempotent
        with pytest.raises(SessionEndedError):
            await stores.sessions.create(session)
        with pytest.raises(SessionEndedError) as raised:
            await stores.runs.upsert(
                RunRecord(agent_id="a", run_id=fresh("run"), session_id=session)
            )
        assert raised.value.field == "record.session_id"

    async def test_unknown_sessions_and_bad_arguments(self, stores: Any) -> None:
        with pytest.raises(SessionNotFoundError):
            await stores.sessions.load(fresh("s"))
        with pytest.raises(SessionNotFoundError):
            await stores.sessions.end(fresh("s"))
        with pytest.raises(StoreInputError) as raised:
            await stores.sessions.create("")
        assert raised.value.field == "session_id"
        with pytest.raises(StoreInputError) as raised:
            await stores.sessions.create(fresh("s"), metadata={"x": float("inf")})
        assert raised.value.field.startswith("metadata")

    async def test_list_with_filters_and_last_activity(self, stores: Any) -> None:
        user = fresh("u")
        first, second = fresh("s"), fresh("s")
        await stores.sessions.create(first, user_id=user, created_at=at(0))
        await stores.sessions.create(second, user_id=user, created_at=at(1))
        run = fresh("run")
        await stores.runs.upsert(
            RunRecord(agent_id="agent", run_id=run, session_id=first, started_at=at(2))
        )
        await stores.memory.append_events("agent", run, *tool_turn(3))  # last event at 9 s
        listed = await stores.sessions.list(user_id=user)
        assert [s.session_id for s in listed] == [first, second]  # most recently active first
        assert listed[0].last_activity_at == at(9)
        assert listed[0].run_count == 1
        await stores.sessions.end(second, ended_at=at(10))
        active = await stores.sessions.list(user_id=user, status=SessionStatus.ACTIVE)
        assert [s.session_id for s in active] == [first]
        recent = await stores.sessions.list(user_id=user, active_since=at(9.5))
        assert [s.session_id for s in recent] == [second]
        assert await stores.sessions.list(user_id=fresh("u")) == []


def _shift(field: str) -> str:
    """``events[i]`` of a bad case, moved by the good event put before it."""
    i = int(field[len("events[") : field.index("]")])
    return f"events[{i + 1}]"
