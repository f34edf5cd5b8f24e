"""Every consumer reads a record's envelope the same way: a foreign producer's record
on another partition than the contract's, or under another key than its event's, is
dead-lettered with the same reason by every consumer, and nothing stalls."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer

from runwire.client import Client
from runwire.contract.events import Event, RunStarted, RunStatus, UserMessage
from runwire.errors import NotFoundError
from runwire.log import Publisher
from runwire.log.partitioner import partition_for
from runwire.projections.runs.reader import RunStore
from runwire.projections.runtime.dead_letters import list_dead_letters
from runwire.projections.transcripts.reader import TranscriptCache
from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.services.tools.wiring import tool_runner_service
from runwire.settings import Settings
from tests.helpers import assert_eventually
from tests.integration.api_support import projectors

CONSUMERS = ("runs", "sessions", "transcripts", "orchestrator", "tools")


async def test_a_misplaced_or_miskeyed_record_is_dead_lettered_alike_by_every_consumer(
    settings: Settings,
) -> None:
    run_id = "foreign-1"
    started = Event.create(RunStarted(agent_id="assistant"), run_id=run_id, session_id="s-f")
    said = Event.create(UserMessage(parts=["what is 2 + 2?"]), run_id=run_id, session_id="s-f")
    async with Publisher(settings) as ours:
        # What a producer with another partitioner (librdkafka's crc32) would do.
        partitions = await ours.prepare_topic(settings.run_events)
        right = partition_for(run_id.encode(), partitions)
        wrong = (right + 1) % len(partitions)
        misplaced, miskeyed = ours.record_for(started), ours.record_for(said)
    raw = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await raw.start()
    try:
        placed = await (
            await raw.send(
                settings.run_events,
                misplaced.value,
                key=misplaced.key,
                headers=misplaced.headers,
                partition=wrong,
            )
        )
        keyed = await (
            await raw.send(
                settings.run_events,
                miskeyed.value,
                key=b"someone-else",
                headers=miskeyed.headers,
                partition=partition_for(b"someone-else", partitions),
            )
        )
    finally:
        await raw.stop()

    async with (
        projectors(settings),
        orchestrator_service(settings, history=False),
        tool_runner_service(settings),
        Client(settings) as rw,
    ):
        outcome = await (await rw.run("assistant", "what is 6 * 7?", session_id="s-ok")).wait(60)
        expected = {
            (c, reason, m.partition, m.offset)
            for c in CONSUMERS
            for reason, m in (("wrong_partition", placed), ("key_mismatch", keyed))
        }

        async def every_consumer_dead_lettered_both() -> bool:
            letters = await list_dead_letters(settings)
            seen = {(d.consumer, d.reason, d.source_partition, d.source_offset) for d in letters}
            return expected <= seen

        await assert_eventually(every_consumer_dead_lettered_both, timeout=30, interval=0.5)
        # The misplaced run is no run at all: no read model holds it.
        async with await RunStore.connect(settings) as runs:
            with pytest.raises(NotFoundError):
                await runs.get(run_id)
        async with TranscriptCache(settings) as cache:
            assert await cache.start_of(run_id) is None
    assert outcome.status is RunStatus.COMPLETED, outcome.events
    assert "42" in outcome.text
