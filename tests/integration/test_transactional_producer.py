"""A foreign producer that writes in Kafka transactions (Java's exactly-once posture).

What every consumer must do with its records, as with any other producer's:
- the records of an aborted transaction were never written: no consumer
  applies, answers, hands or dead-letters them;
- a committed transaction's records are read like any others: the
  orchestrator answers its run, every projection shows it;
- each transaction's commit or abort marker takes an offset that no record
  holds, and every projection's lag still reaches 0 (the stored positions
  reach the log end).
"""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from runwire.contract.events import Event, RunStarted, RunStatus, UserMessage
from runwire.errors import NotFoundError
from runwire.log import Publisher
from runwire.projections.runs.reader import RunStore
from runwire.projections.transcripts.reader import TranscriptCache
from runwire.settings import Settings
from tests.helpers import assert_eventually
from tests.support.every_consumer import every_consumer


def prompt(run_id: str, text: str) -> list[Event]:
    started = Event.create(
        RunStarted(agent_id="assistant"), run_id=run_id, agent_id="assistant", producer="java-tx"
    )
    asked = Event.create(
        UserMessage(parts=[text]),
        run_id=run_id,
        agent_id="assistant",
        producer="java-tx",
        causation_id=started.event_id,
    )
    return [started, asked]


async def write_in_transaction(
    settings: Settings, producer: AIOKafkaProducer, events: list[Event], *, commit: bool
) -> None:
    # The records exactly as the README has a foreign producer write them
    # (key, Avro body, headers); only the producer's posture differs.
    async with Publisher(settings) as shaper:
        records = [shaper.record_for(e) for e in events]
    await producer.begin_transaction()
    for r in records:
        await producer.send_and_wait(r.topic, r.value, key=r.key, headers=list(r.headers))
    if commit:
        await producer.commit_transaction()
    else:
        await producer.abort_transaction()


async def test_an_aborted_transaction_is_read_by_no_consumer(settings: Settings) -> None:
    tag = uuid.uuid4().hex[:8]
    aborted, committed = f"tx-aborted-{tag}", f"tx-committed-{tag}"
    async with every_consumer(settings) as consumers:
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            transactional_id=f"java-tx-{tag}",
            enable_idempotence=True,
            acks="all",
        )
        await producer.start()
        try:
            await write_in_transaction(
                settings, producer, prompt(aborted, "never asked: rolled back"), commit=False
            )
            committed_events = prompt(committed, "what is 6 * 7?")
            await write_in_transaction(settings, producer, committed_events, commit=True)
        finally:
            await producer.stop()

        handle = consumers.client.handle(committed)
        outcome = await handle.wait(timeout=90)
        assert outcome.status is RunStatus.COMPLETED, outcome.events
        assert "42" in outcome.text

        await consumers.wait_caught_up()
        consumers.assert_alive()

        async with await RunStore.connect(settings) as runs:
            assert (await runs.get(committed)).status == "completed"
            try:
                row = await runs.get(aborted)
            except NotFoundError:
                row = None
        assert row is None, f"the run-status store applied an aborted transaction: {row}"
        async with TranscriptCache(settings) as cache:
            assert await cache.get(committed)
            with pytest.raises(NotFoundError):
                await cache.get(aborted)

        async def subscriber_saw_the_committed_run() -> bool:
            assert {e.event_id for e in committed_events} <= {
                e.event_id for e in consumers.subscribed
            }
            return True

        await assert_eventually(subscriber_saw_the_committed_run, timeout=30, interval=0.3)
        assert not [e for e in consumers.subscribed if e.run_id == aborted]
        assert consumers.undecodable == {}
        assert await consumers.dead_letters() == {}

    # Nothing committed was ever written for the aborted run: not an answer,
    # not a failure (the orchestrator and the watchdog never saw it).
    reader = AIOKafkaConsumer(
        settings.run_events,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await reader.start()
    try:
        written = []
        while batch := await reader.getmany(timeout_ms=1000):
            written += [r.key for records in batch.values() for r in records]
    finally:
        await reader.stop()
    assert committed.encode() in written
    assert aborted.encode() not in written
