"""The live watcher holds a bounded number of events for a reader that stops reading.

A fake consumer over one partition stands in for Kafka: it fetches a few
records at a time from its position, honours seek, pause and resume, and
counts what it fetched. The bound is lowered to keep the log short.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import pytest

from runwire.contract.codec import default_codec
from runwire.contract.events import Event, RunStarted, UserMessage
from runwire.contract.routing import record_key
from runwire.log import watcher as watching
from runwire.log.watcher import RunWatcher
from runwire.settings import Settings
from tests.support.consumed import Consumed

TOPIC = "run-events"
RUN = "run-long"
HELD = 100
FETCH = 50


class _TP(NamedTuple):
    topic: str
    partition: int


class FakeConsumer:
    """One partition of records, read from a position like aiokafka's consumer."""

    def __init__(self, events: list[Event]) -> None:
        codec = default_codec()
        self.log = [
            Consumed(TOPIC, 0, i, 0, record_key(e), codec.encode(e), [])
            for i, e in enumerate(events)
        ]
        self.at = 0
        self.paused = False
        self.fetched = 0

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[Any, list[Consumed]]:
        await asyncio.sleep(0.001)
        if self.paused or self.at >= len(self.log):
            return {}
        records = self.log[self.at : self.at + min(max_records, FETCH)]
        self.at += len(records)
        self.fetched += len(records)
        return {_TP(TOPIC, 0): records}

    async def position(self, tp: Any) -> int:
        return self.at

    def seek(self, tp: Any, offset: int) -> None:
        self.at = offset

    def pause(self, *tps: Any) -> None:
        self.paused = True

    def resume(self, *tps: Any) -> None:
        self.paused = False

    async def stop(self) -> None:
        return None


def _run(others: int, ours: int) -> list[Event]:
    """A run of ``ours`` messages, each after ``others`` records of another run."""
    out = [Event.create(RunStarted(agent_id="a"), run_id=RUN, session_id="s")]
    for i in range(ours):
        out += [
            Event.create(UserMessage(parts=[f"other {i}.{j}"]), run_id="run-other", session_id="s")
            for j in range(others)
        ]
        out.append(Event.create(UserMessage(parts=[f"message {i}"]), run_id=RUN, session_id="s"))
    return out


async def _idle(consumer: FakeConsumer) -> None:
    """Until the watcher has fetched all it will (the log end, or its partition paused)."""
    before = -1
    while consumer.fetched != before:
        before = consumer.fetched
        await asyncio.sleep(0.05)


Watched = tuple[RunWatcher, FakeConsumer, list[tuple[int, Event]]]


@pytest.fixture
async def watched(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Watched]:
    """A watcher over a log of 3,000 records; the offsets and events of the run's."""
    monkeypatch.setattr(watching, "HELD_EVENTS", HELD)
    events = _run(others=2, ours=10 * HELD)
    consumer = FakeConsumer(events)
    watcher = RunWatcher(Settings(), default_codec(), topic=TOPIC)
    watcher._consumer = consumer
    watcher._partitions = [0]
    watcher._task = asyncio.create_task(watcher._read())
    try:
        yield watcher, consumer, [(i, e) for i, e in enumerate(events) if e.run_id == RUN]
    finally:
        await watcher.stop()


async def test_a_reader_that_stops_reading_holds_a_bounded_number_of_events(
    watched: Watched,
) -> None:
    # An event stream's client that stops reading a long (or endless) run
    # made the watcher keep every event it read for it, and a marker per fetch.
    watcher, consumer, ours = watched
    stream = watcher.events(RUN, 0, 0, until_terminal=False)
    assert await anext(stream) == ours[0]
    await _idle(consumer)
    # What it did not fetch it cannot hold: it stopped fetching, and holds few.
    assert consumer.fetched < len(consumer.log) // 2
    assert consumer.paused  # nobody takes this partition's records
    (sub,) = watcher._subs[0]
    assert len(sub.held) <= HELD
    # Read on: every event comes, once, in log order, however often it was parked.
    assert [await anext(stream) for _ in ours[1:]] == ours[1:]
    assert consumer.fetched < 4 * len(consumer.log)  # read again only from where it parked
    await stream.aclose()


async def test_a_reader_of_a_bounded_range_ends_after_its_last_event(watched: Watched) -> None:
    watcher, consumer, ours = watched
    stop_at = len(consumer.log) // 2
    got = []
    async for item in watcher.events(RUN, 0, 0, stop_at, until_terminal=False):
        got.append(item)
        if len(got) == 1:
            await _idle(consumer)  # parked meanwhile
    wanted = [(i, e) for i, e in ours if i < stop_at]
    assert got[: len(wanted)] == wanted


async def test_a_later_subscriber_from_further_back_misses_nothing(watched: Watched) -> None:
    watcher, _, ours = watched
    first = watcher.events(RUN, 0, 0, until_terminal=False)
    assert await anext(first) == ours[0]
    second = watcher.events(RUN, 0, 0, until_terminal=False)
    assert [await anext(second) for _ in ours] == ours
    assert [await anext(first) for _ in ours[1:]] == ours[1:]
    await first.aclose()
    await second.aclose()
