"""Waits on a projection's positions share one poll loop (runtime.waiting)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

import pytest

from runwire.log import Position
from runwire.log.records import TopicPartition
from runwire.projections.runtime.waiting import NotCaughtUpError, PositionWaits, wait_for


class Positions:
    """A projection's stored positions, set by the test; counts the polls."""

    name = "twin"
    topics = ("t",)

    def __init__(self) -> None:
        self.stored: dict[TopicPartition, int] = {}
        self.polls = 0
        self.failure: Exception | None = None

    async def load_positions(
        self, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, int]:
        self.polls += 1
        await asyncio.sleep(0)
        if self.failure is not None:
            raise self.failure
        return {tp: self.stored.get(tp, 0) for tp in partitions}


def at(offset: int, partition: int = 0) -> Position:
    return Position("t", partition, offset)


async def test_an_applied_position_returns_at_the_first_poll() -> None:
    twin = Positions()
    twin.stored[TopicPartition("t", 0)] = 5
    await wait_for(twin, at(4))  # type: ignore[arg-type]
    assert twin.polls == 1


async def test_many_waits_share_the_polls() -> None:
    twin = Positions()
    waits = PositionWaits(twin)  # type: ignore[arg-type]
    tasks = [
        asyncio.create_task(waits.wait(at(i, i % 3), 5, first_poll=0.002, max_poll=0.01))
        for i in range(60)
    ]
    await asyncio.sleep(0.05)
    assert not any(t.done() for t in tasks)
    for p in range(3):
        twin.stored[TopicPartition("t", p)] = 100
    await asyncio.wait_for(asyncio.gather(*tasks), 2)
    # One loop of its own per wait would have polled at least once each,
    # and about six times each in those 50 ms.
    assert twin.polls < 30


async def test_a_wait_that_is_not_reached_times_out_naming_the_position() -> None:
    twin = Positions()
    twin.stored[TopicPartition("t", 1)] = 3
    with pytest.raises(NotCaughtUpError, match=r"t/1@3, not yet past offset 7"):
        await wait_for(twin, at(7, 1), 0.05, first_poll=0.005)  # type: ignore[arg-type]


async def test_a_store_failure_reaches_every_wait_and_the_next_wait_polls_again() -> None:
    twin = Positions()
    waits = PositionWaits(twin)  # type: ignore[arg-type]
    tasks = [asyncio.create_task(waits.wait(at(i), 5, first_poll=0.002)) for i in range(3)]
    await asyncio.sleep(0.01)
    twin.failure = ConnectionError("store down")
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    twin.failure = None
    twin.stored[TopicPartition("t", 0)] = 1
    await waits.wait(at(0), 1)


async def test_a_cancelled_wait_leaves_the_others_waiting() -> None:
    twin = Positions()
    waits = PositionWaits(twin)  # type: ignore[arg-type]
    first = asyncio.create_task(waits.wait(at(1), 5, first_poll=0.002))
    second = asyncio.create_task(waits.wait(at(2), 5, first_poll=0.002))
    await asyncio.sleep(0.01)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    twin.stored[TopicPartition("t", 0)] = 3
    await asyncio.wait_for(second, 1)
    assert first.cancelled()


async def test_a_position_of_another_topic_is_refused() -> None:
    with pytest.raises(ValueError, match="reads"):
        await wait_for(Positions(), Position("other", 0, 1))  # type: ignore[arg-type]
