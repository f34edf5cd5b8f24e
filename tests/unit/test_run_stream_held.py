"""``RunHandle.stream()`` reads no further ahead of its reader than a bounded queue.

Fake watchers stand in for the log: the run's is endless, its live topic quiet.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any, cast

from runwire.client import STREAM_HELD, RunHandle
from runwire.contract.events import Event, UserMessage

RUN = "run-endless"


class EndlessRun:
    """A run that never ends, its events read as fast as they are asked for."""

    def __init__(self) -> None:
        self.read = 0

    async def end_offset(self, partition: int) -> int:
        return 0

    def partition_of(self, run_id: str) -> int:
        return 0

    async def offset_at(self, partition: int, millis: int) -> int:
        return 0

    async def events(
        self, run_id: str, partition: int, start: int, stop_at: int | None = None, **_: Any
    ) -> AsyncGenerator[tuple[int, Event], None]:
        if stop_at is not None and start >= stop_at:
            return
        while True:
            self.read += 1
            yield self.read, Event.create(UserMessage(parts=["more"]), run_id=RUN, session_id="s")
            await asyncio.sleep(0)


class QuietLive(EndlessRun):
    """A live topic on which nothing is written."""

    async def events(self, *_: Any, **__: Any) -> AsyncGenerator[tuple[int, Event], None]:
        await asyncio.Event().wait()
        yield 0, Event.create(UserMessage(parts=["never"]), run_id=RUN, session_id="s")


class FakeClient:
    def __init__(self) -> None:
        self.run = EndlessRun()
        self.live = QuietLive()

    def _reader_or_fail(self) -> EndlessRun:
        return self.run

    async def _live_reader(self) -> QuietLive:
        return self.live


async def test_a_stream_whose_reader_stalls_stops_reading_the_log() -> None:
    # The stream's pumps put every event in a queue without bound: an event
    # stream's client that stopped reading (``live=true``) grew it for good.
    client = FakeClient()
    handle = RunHandle(cast(Any, client), RUN, partition=0, first_offset=0)
    stream = handle.stream()
    await anext(stream)
    await asyncio.sleep(0.2)
    assert client.run.read <= STREAM_HELD + 2
    for _ in range(3 * STREAM_HELD):
        assert (await anext(stream)).run_id == RUN
    await stream.aclose()
