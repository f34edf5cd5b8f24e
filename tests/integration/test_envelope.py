"""Every consumer reads a record's envelope the same way: a foreign producer's record
on another partition than the contract's, or under another key than its event's, is
dead-lettered with the same reason by every consumer, and nothing stalls."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from faststream.kafka import KafkaBroker

from runwire.client import Client
from runwire.contract.events import Event, RunStarted, RunStatus, UserMessage
from runwire.errors import DecodeError, NotFoundError
from runwire.log import Publisher
from runwire.log.partitioner import partition_for
from runwire.projections.runs.reader import RunStore
from runwire.projections.runtime.dead_letters import list_dead_letters
from runwire.projections.transcripts.reader import TranscriptCache
from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.services.tools.wiring import tool_runner_service
from runwire.settings import Settings
from runwire.subscribe import Subscription
from runwire.transcript.messages import TextPart
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

    # A subscriber (faststream) reads the topic too: the same two records reach its
    # undecodable hook with the same reasons; its handlers see only the good run.
    seen_by_subscriber: list[str] = []
    refused: dict[tuple[int, int], str] = {}
    subscription = Subscription(settings, "envelope-check")

    @subscription.on(UserMessage)
    async def said_something(payload: UserMessage, event: Event) -> None:
        seen_by_subscriber.append(event.run_id or "")

    @subscription.on(RunStarted)
    async def started_one(payload: RunStarted, event: Event) -> None:
        seen_by_subscriber.append(event.run_id or "")

    @subscription.on_undecodable
    async def refuse(record: ConsumerRecord[bytes, bytes], error: DecodeError) -> None:
        refused[(record.partition, record.offset)] = error.reason

    broker = KafkaBroker(settings.kafka_bootstrap_servers, logger=None)
    subscription.attach(broker)

    async with (
        broker,
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

        await broker.start()
        await assert_eventually(every_consumer_dead_lettered_both, timeout=30, interval=0.5)
        await assert_eventually(lambda: len(refused) == 2, timeout=30)
        assert refused == {
            (placed.partition, placed.offset): "wrong_partition",
            (keyed.partition, keyed.offset): "key_mismatch",
        }
        assert run_id not in seen_by_subscriber
        # The misplaced run is no run at all: no read model holds it.
        async with await RunStore.connect(settings) as runs:
            with pytest.raises(NotFoundError):
                await runs.get(run_id)
        async with TranscriptCache(settings) as cache:
            assert await cache.start_of(run_id) is None
    assert outcome.status is RunStatus.COMPLETED, outcome.events
    assert "42" in outcome.text


async def test_an_id_reused_with_another_body_is_refused_alike_by_every_consumer(
    settings: Settings,
) -> None:
    run_id = "reused-1"
    started = Event.create(RunStarted(agent_id="assistant"), run_id=run_id, session_id="s-r")
    said = Event.create(UserMessage(parts=["first words"]), run_id=run_id, session_id="s-r")
    # The same id again, with other words: a producer's bug, or someone's attempt
    # to rewrite what was said.
    rewritten = said.model_copy(update={"payload": UserMessage(parts=["other words"])})
    async with (
        projectors(settings),
        orchestrator_service(settings, history=False),
        Publisher(settings) as ours,
    ):
        # Both at once, so that the orchestrator reads the copy before it answers.
        _, _, copy, again = await ours.publish_many([started, said, rewritten, said])

        async def every_consumer_refused_the_copy() -> bool:
            letters = await list_dead_letters(settings)
            seen = {(d.consumer, d.reason, d.source_offset) for d in letters}
            return {
                (c, "conflicting_duplicate_event", copy.offset)
                for c in ("runs", "sessions", "transcripts")
            } <= seen

        await assert_eventually(every_consumer_refused_the_copy, timeout=30, interval=0.5)
        letters = await list_dead_letters(settings)
        assert again.offset not in {d.source_offset for d in letters}, "a retry is no conflict"
        async with TranscriptCache(settings) as cache:
            messages = await cache.get(run_id)
        assert messages[0].parts == (TextPart(text="first words"),), "the first is kept"
        # The orchestrator refuses it as well: it never answers the rewritten words.
        async with await RunStore.connect(settings) as runs:

            async def failed() -> bool:
                return (await runs.get(run_id)).status == RunStatus.FAILED.value

            await assert_eventually(failed, timeout=30)
            run = await runs.get(run_id)
        assert run.last_error is not None
        assert "conflicting_duplicate_event" in run.last_error["message"]
