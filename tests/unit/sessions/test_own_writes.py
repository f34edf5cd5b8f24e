"""A writer's unconfirmed new runs: merged into its reads in the session's order,
never doubled, a failed confirmation raised at the next operation."""

from __future__ import annotations

import asyncio

import pytest

from runwire.projections.runtime.waiting import NotCaughtUpError
from runwire.projections.transcripts.session_view import RunRecord, Visible
from runwire.sessions.errors import WriteRefusedError
from runwire.sessions.own_writes import OwnWrites, Pending, merge, merge_records
from runwire.transcript.messages import Message, TextPart


def said(text: str, role: str = "user") -> Message:
    return Message(role=role, parts=(TextPart(text=text),))


def texts(messages: list[Message]) -> list[str]:
    return [m.text() for m in messages]


def test_a_pending_run_goes_where_its_first_ms_puts_it() -> None:
    cached = [RunRecord("a", 10, [said("q0")]), RunRecord("c", 30, [said("q2")])]
    mine = Pending("s", "b", 20, [said("q1"), said("a1", "assistant")])
    merged = merge_records(cached, [mine], None)
    assert [r.run_id for r in merged] == ["a", "b", "c"]
    assert texts([m for r in merged for m in r.messages]) == ["q0", "q1", "a1", "q2"]


def test_a_pending_run_stands_for_the_caches_copy_never_doubled() -> None:
    cached = [RunRecord("a", 10, [said("q0")]), RunRecord("b", 20, [said("q1")])]
    mine = Pending("s", "a", 10, [said("q0"), said("a0", "assistant")])
    merged = merge_records(cached, [mine], None)
    assert [r.run_id for r in merged] == ["a", "b"]
    assert texts(merged[0].messages) == ["q0", "a0"]


def test_a_pending_run_before_the_clear_point_is_left_out() -> None:
    mine = Pending("s", "b", 20, [said("q1")])
    assert merge_records([], [mine], 20) == []
    assert [r.run_id for r in merge_records([], [mine], 19)] == ["b"]


def test_merge_keeps_the_reads_shape_and_its_clear_point() -> None:
    seen = Visible.of([RunRecord("a", 10, [said("q0")])], cleared_ms=5)
    merged = merge(seen, [Pending("s", "b", 20, [said("q1")])])
    assert merged.run_ids == ["a", "b"]
    assert merged.firsts == [10, 20]
    assert merged.counts == [1, 1]
    assert merged.cleared_ms == 5
    assert [r.messages for r in merged.records()] == [[said("q0")], [said("q1")]]
    deleted = Visible([], [], deleted=True)
    assert merge(deleted, [Pending("s", "b", 20, [said("q1")])]) is deleted


async def test_a_confirmed_run_is_dropped_and_a_failed_one_raised_once() -> None:
    own = OwnWrites()
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    own.add(Pending("s", "a", 10, [said("q0")]), done)
    assert [p.run_id for p in own.pending("s")] == ["a"]
    assert own.find("a") is not None
    done.set_result(None)
    await own.settle("s", 1.0)
    assert own.pending("s") == []
    assert own.find("a") is None

    async def refused() -> None:
        raise WriteRefusedError("the cache did not take it")

    own.add(Pending("s", "b", 20, [said("q1")]), refused())
    with pytest.raises(WriteRefusedError, match="did not take"):
        await own.settle("s", 1.0)
    own.check("s")  # raised once: the writer was told
    assert own.pending("s") == []


async def test_a_slow_cache_is_no_failure_settle_says_it_is_behind() -> None:
    own = OwnWrites()
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    own.add(Pending("s", "a", 10, [said("q0")]), never)
    with pytest.raises(NotCaughtUpError, match="has not applied 1"):
        await own.settle("s", 0.05)
    own.check("s")  # nothing failed: still confirming, still served
    assert [p.run_id for p in own.pending("s")] == ["a"]
    await own.close(0.05)  # stops waiting (the write is in the log)
    assert never.cancelled() or not never.done()


async def test_settle_and_close_wait_for_a_write_a_later_append_replaced() -> None:
    # A new run's confirmation (which also waits for the run-status store) goes
    # on after an append to the same run replaced it as the run served here.
    own = OwnWrites()
    first_done, second_done = asyncio.Event(), asyncio.Event()

    async def confirm(hurry: asyncio.Event, done: asyncio.Event) -> None:
        await hurry.wait()  # as a served write's confirmation waits to be hurried
        await asyncio.sleep(0.01)
        done.set()

    first = Pending("s", "r", 10, [said("q0")])
    own.add(first, confirm(first.hurry, first_done))
    second = Pending("s", "r", 10, [said("q0"), said("a0", "assistant")])
    own.add(second, confirm(second.hurry, second_done))
    assert own.pending("s") == [second]
    await own.settle("s", timeout=5.0)
    assert first_done.is_set()
    assert second_done.is_set()

    third_done, fourth_done = asyncio.Event(), asyncio.Event()
    third = Pending("t", "r2", 10, [said("q0")])
    own.add(third, confirm(third.hurry, third_done))
    fourth = Pending("t", "r2", 10, [said("q0"), said("a0", "assistant")])
    own.add(fourth, confirm(fourth.hurry, fourth_done))
    await own.close(timeout=5.0)
    assert third_done.is_set()
    assert fourth_done.is_set()
