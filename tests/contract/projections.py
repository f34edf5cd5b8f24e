"""The Projection contract (runwire.projections.runtime.protocol), once for every implementation.

A test module subclasses :class:`ProjectionContract` and provides a
``harness`` fixture: a :class:`Harness` around one projection on the real
store. Each rule of the contract is one test here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from runwire.contract.events import (
    CheckpointPruned,
    CheckpointPut,
    CheckpointWrites,
    Event,
    MemoryDeleted,
    MemorySet,
    RunCompleted,
    RunStarted,
    SessionCreated,
    SessionEnded,
    SessionMetadataSet,
    ToolResult,
    ToolUse,
    UserMessage,
)
from runwire.log.records import SourceRecord, TopicPartition
from runwire.projections.runtime.protocol import Batch, Projection, Rejection


class RecordingSink:
    """A dead-letter sink that keeps what it is sent (and can be told to fail)."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[Rejection] = []
        self.fail = fail

    async def send(self, rejections: Sequence[Rejection]) -> None:
        if self.fail and rejections:
            raise RuntimeError("dead-letter topic unavailable")
        self.sent.extend(rejections)


@dataclass
class Harness:
    """One projection under test and what the contract tests need to drive it.

    ``good`` are events the projection applies, in order, on ``tp``;
    ``bad`` is one it must reject (on the same partition, after ``good``);
    ``state`` returns everything the projection stores except positions.
    """

    projection: Projection
    tp: TopicPartition
    good: list[Event]
    bad: Event
    key: Callable[[Event], bytes]
    state: Callable[[], Awaitable[Any]]


def run_scenario() -> tuple[list[Event], Event]:
    """Run events a run-status projection applies in order, and one it must reject."""

    def run_event(payload: Any) -> Event:
        return Event.create(payload, run_id="r1", session_id="s1", user_id="u1")

    good = [
        run_event(RunStarted(agent_id="a")),
        run_event(UserMessage(parts=["hi"])),
        run_event(ToolUse(id="t1", name="lookup")),
        run_event(ToolResult(tool_use_id="t1", content=1, is_error=True)),
        run_event(RunCompleted()),
    ]
    return good, run_event(ToolResult(tool_use_id="t-unknown"))


def session_scenario() -> tuple[list[Event], Event]:
    """Session events a session index applies in order, and one it must reject."""

    def session_event(payload: Any) -> Event:
        return Event.create(payload, session_id="s1")

    good = [
        session_event(SessionCreated(user_id="u1", metadata={"a": 1})),
        session_event(SessionMetadataSet(key="b", value=[1, 2])),
        session_event(SessionEnded()),
    ]
    # A run event on the session topic is in the wrong place.
    return good, Event.create(RunStarted(), run_id="r1", session_id="s1")


def memory_scenario() -> tuple[list[Event], Event]:
    """Memory events a memory projection applies in order, and one it must reject."""

    def memory_event(payload: Any) -> Event:
        return Event.create(payload, user_id="u1")

    good = [
        memory_event(MemorySet(scope="user", owner="u1", key="colour", value="teal")),
        memory_event(MemoryDeleted(scope="user", owner="u1", key="colour")),
        memory_event(MemorySet(scope="user", owner="u1", key="colour", value={"hex": 1})),
    ]
    # A run event on the memory topic is in the wrong place.
    return good, Event.create(RunStarted(), run_id="r1", session_id="s1")


def checkpoint_scenario() -> tuple[list[Event], Event]:
    """Checkpoint events a checkpoints projection applies in order, and one it must reject."""

    def put(checkpoint_id: str, values: list[Any], data: bytes, parent: str | None) -> Event:
        return Event.create(
            CheckpointPut(
                thread_id="th1",
                checkpoint_id=checkpoint_id,
                parent_checkpoint_id=parent,
                checkpoint={"v": 4, "id": checkpoint_id, "channel_versions": {"m": checkpoint_id}},
                metadata={"step": int(checkpoint_id[-1]), "run_id": "run-a"},
                values=values,
                data=data,
            )
        )

    good = [
        put(
            "c1",
            [{"channel": "m", "version": "c1", "base": None, "keep": 0, "items": [["t", 2]]}],
            b"ab",
            None,
        ),
        Event.create(
            CheckpointWrites(
                thread_id="th1",
                checkpoint_id="c1",
                task_id="task",
                writes=[{"idx": 0, "channel": "m", "type": "t", "size": 1}],
                data=b"c",
            )
        ),
        put(
            "c2",
            [{"channel": "m", "version": "c2", "base": "c1", "keep": 1, "items": [["t", 1]]}],
            b"c",
            "c1",
        ),
        Event.create(CheckpointPruned(thread_id="th1", strategy="keep_latest")),
    ]
    # Descriptors that claim more bytes than the event holds.
    bad = put("c3", [{"channel": "m", "version": "c3", "type": "t", "size": 9}], b"x", "c2")
    return good, bad


def records(h: Harness, events: Sequence[Event], first_offset: int) -> list[SourceRecord]:
    return [
        SourceRecord(h.tp.topic, h.tp.partition, first_offset + i, 0, h.key(e), b"", (), e)
        for i, e in enumerate(events)
    ]


def batch(recs: Sequence[SourceRecord], tp: TopicPartition, expected: int, nxt: int) -> Batch:
    return Batch(records=list(recs), next_positions={tp: nxt}, expected={tp: expected})


class ProjectionContract:
    async def test_apply_stores_rows_and_positions_together(self, harness: Harness) -> None:
        h = harness
        before = await h.state()
        result = await h.projection.apply(
            batch(records(h, h.good, 0), h.tp, 0, len(h.good)), RecordingSink()
        )
        assert result.positions == {h.tp: len(h.good)}
        assert result.applied == len(h.good)
        assert await h.projection.load_positions([h.tp]) == {h.tp: len(h.good)}
        assert await h.state() != before

    async def test_records_below_the_stored_position_are_skipped(self, harness: Harness) -> None:
        h = harness
        recs = records(h, h.good, 0)
        await h.projection.apply(batch(recs, h.tp, 0, len(recs)), RecordingSink())
        after_once = await h.state()
        result = await h.projection.apply(batch(recs, h.tp, 0, len(recs)), RecordingSink())
        assert result.skipped == len(recs)
        assert result.applied == 0
        assert await h.state() == after_once

    async def test_positions_never_move_back(self, harness: Harness) -> None:
        h = harness
        await h.projection.apply(batch(records(h, h.good, 0), h.tp, 0, 10), RecordingSink())
        result = await h.projection.apply(batch([], h.tp, 0, 3), RecordingSink())
        assert result.positions[h.tp] == 10
        assert (await h.projection.load_positions([h.tp]))[h.tp] == 10

    async def test_a_store_switched_under_the_runner_is_left_alone(self, harness: Harness) -> None:
        h = harness
        half = len(h.good) // 2
        await h.projection.apply(
            batch(records(h, h.good[:half], 0), h.tp, 0, half), RecordingSink()
        )
        state = await h.state()
        # The runner believes more is stored than there is (a rebuilt copy went live).
        rest = records(h, h.good[half:], half + 5)
        result = await h.projection.apply(
            batch(rest, h.tp, half + 5, half + 5 + len(rest)), RecordingSink()
        )
        assert result.positions[h.tp] == half
        assert result.applied == 0
        assert await h.state() == state

    async def test_duplicates_at_later_offsets_change_nothing(self, harness: Harness) -> None:
        h = harness
        n = len(h.good)
        await h.projection.apply(batch(records(h, h.good, 0), h.tp, 0, n), RecordingSink())
        state = await h.state()
        again = records(h, h.good, n)
        result = await h.projection.apply(batch(again, h.tp, n, 2 * n), RecordingSink())
        # How a projection counts them is its own (an event that makes no row may count
        # as applied); that they change nothing and are never rejected is the contract.
        assert result.rejected == 0
        assert result.duplicates + result.applied == n
        assert await h.state() == state
        assert result.positions[h.tp] == 2 * n

    async def test_an_applied_id_with_another_body_is_refused(self, harness: Harness) -> None:
        h = harness
        n = len(h.good)
        await h.projection.apply(batch(records(h, h.good, 0), h.tp, 0, n), RecordingSink())
        state = await h.state()
        # Every applied id again, each with another event's body (same stream).
        reused = [
            e.model_copy(update={"payload": other.payload, "type": other.type})
            for e, other in zip(h.good, [*h.good[1:], h.good[0]], strict=True)
        ]
        sink = RecordingSink()
        result = await h.projection.apply(batch(records(h, reused, n), h.tp, n, 2 * n), sink)
        assert [(r.offset, r.reason) for r in sink.sent] == [
            (n + i, "conflicting_duplicate_event") for i in range(n)
        ]
        assert result.rejected == n
        assert await h.state() == state, "the first body is kept"
        assert result.positions[h.tp] == 2 * n

    async def test_unappliable_records_are_dead_lettered_and_passed(self, harness: Harness) -> None:
        h = harness
        n = len(h.good)
        recs = records(h, [*h.good, h.bad], 0)
        sink = RecordingSink()
        result = await h.projection.apply(batch(recs, h.tp, 0, n + 1), sink)
        assert [(r.offset, r.reason) for r in sink.sent] == [(n, sink.sent[0].reason)]
        assert sink.sent[0].reason
        assert result.rejected == 1
        assert result.positions[h.tp] == n + 1

    async def test_nothing_is_stored_when_dead_letters_cannot_be_written(
        self, harness: Harness
    ) -> None:
        h = harness
        before = await h.state()
        recs = records(h, [*h.good, h.bad], 0)
        with pytest.raises(RuntimeError, match="dead-letter"):
            await h.projection.apply(batch(recs, h.tp, 0, len(recs)), RecordingSink(fail=True))
        assert await h.state() == before
        assert await h.projection.load_positions([h.tp]) == {h.tp: 0}

    async def test_two_owners_applying_the_same_batch_apply_it_once(self, harness: Harness) -> None:
        h = harness
        recs = records(h, h.good, 0)
        results = await asyncio.gather(
            h.projection.apply(batch(recs, h.tp, 0, len(recs)), RecordingSink()),
            h.projection.apply(batch(recs, h.tp, 0, len(recs)), RecordingSink()),
        )
        assert sorted(r.applied for r in results) == [0, len(recs)]
        assert sorted(r.skipped for r in results) == [0, len(recs)]
