"""The session watcher's start: where it begins reading when the first listener is added.

The consumer is the real one on the real broker; only its two offset lookups are
wrapped, so that writes land exactly between them, where a race on a busy
machine put them (a flaky miss of ``test_callbacks_see_writes_of_another_session_object``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from runwire.contract.events import Event, SessionMetadataSet
from runwire.log import Publisher
from runwire.log import clients as log_clients
from runwire.sessions.protocol import SessionChange
from runwire.sessions.watcher import LogWatcher
from runwire.settings import Settings
from tests.helpers import assert_eventually

pytestmark = pytest.mark.integration


async def test_writes_landing_between_the_start_lookups_are_heard_whatever_their_stamps(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the end offsets: a record stamped before the listener came (its
    producer's clock behind, or a late batch) is heard, as the log's order says
    it came after; after the lookup by time: a new write is. The write before
    the listener is not."""
    sid = "s-start"
    heard: list[SessionChange] = []
    lookups: list[str] = []
    since: list[int] = []

    def metadata(key: str) -> Event:
        return Event.create(SessionMetadataSet(key=key, value=1), session_id=sid)

    async with (
        Publisher(settings) as publisher,
        AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers) as raw,
    ):

        async def stale_write() -> None:
            record = publisher.record_for(metadata("stale"))
            await raw.send_and_wait(
                record.topic,
                record.value,
                key=record.key,
                headers=list(record.headers),
                timestamp_ms=since[0] - 1000,
            )

        class RacingConsumer(AIOKafkaConsumer):  # type: ignore[misc]
            async def end_offsets(self, partitions: Any) -> Any:
                ends = await super().end_offsets(partitions)
                lookups.append("end_offsets")
                await stale_write()
                return ends

            async def offsets_for_times(self, timestamps: Any) -> Any:
                found = await super().offsets_for_times(timestamps)
                lookups.append("offsets_for_times")
                await publisher.publish(metadata("new"))
                return found

        # Every consumer is built by the log layer: the watcher's is the one built next.
        monkeypatch.setattr(log_clients, "AIOKafkaConsumer", RacingConsumer)
        await publisher.publish(metadata("before"))
        await asyncio.sleep(0.05)  # the listener comes strictly after "before" was stamped
        watcher = LogWatcher(settings)
        since.append(int(time.time() * 1000))
        watcher.add(sid, heard.append)
        try:
            await assert_eventually(lambda: len(lookups) == 2, timeout=20)
            await publisher.publish(metadata("after"))
            await assert_eventually(lambda: "after" in [c.key for c in heard], timeout=20)
        finally:
            await watcher.stop()
    assert sorted(lookups) == ["end_offsets", "offsets_for_times"]
    assert [c.key for c in heard] == ["stale", "new", "after"]
