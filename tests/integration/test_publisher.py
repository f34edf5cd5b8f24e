"""The publisher against the real broker: order, batches, identity, routing."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import ConsumerRecord

from runwire.contract.codec import default_codec
from runwire.contract.events import (
    AssistantText,
    Event,
    MemoryDeleted,
    MemorySet,
    SessionCreated,
    Thinking,
    ToolUse,
    UserMessage,
)
from runwire.contract.routing import event_of_record, memory_key
from runwire.errors import PublishError
from runwire.log import Position, Publisher
from runwire.settings import Settings

ANY_EVENTS = 10_000
RUNS = 100


async def read_topic(
    settings: Settings, topic: str, count: int
) -> list[ConsumerRecord[bytes, bytes]]:
    """The first ``count`` records of every partition of ``topic``, in partition order."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(await _partitions(consumer, topic))]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[ConsumerRecord[bytes, bytes]] = []
        async with asyncio.timeout(60):
            while len(records) < count:
                fetched = await consumer.getmany(timeout_ms=1000)
                for batch in fetched.values():
                    records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    async with asyncio.timeout(30):
        while not (found := consumer.partitions_for_topic(topic)):
            await consumer._client.force_metadata_update()
    return set(found)


async def test_concurrent_publishers_keep_each_runs_order(settings: Settings) -> None:
    """10,000 events over 100 runs from 8 tasks: each run reads back in publish order."""
    per_run = ANY_EVENTS // RUNS
    runs = [f"run-{i:03d}" for i in range(RUNS)]

    async with Publisher(settings) as publisher:

        async def worker(mine: list[str]) -> list[tuple[Event, Position]]:
            published: list[tuple[Event, Position]] = []
            for seq in range(per_run):
                # Interleave this worker's runs; alternate single publishes and
                # pipelined ones so both paths are exercised under concurrency.
                events = [
                    Event.create(AssistantText(text=str(seq)), run_id=r, producer="t") for r in mine
                ]
                if seq % 2:
                    positions = await publisher.publish_many(events)
                else:
                    positions = [await publisher.publish(e) for e in events]
                published.extend(zip(events, positions, strict=True))
            return published

        results = await asyncio.gather(*(worker(runs[w::8]) for w in range(8)))

    published = [pair for result in results for pair in result]
    assert len(published) == ANY_EVENTS
    records = await read_topic(settings, settings.run_events, ANY_EVENTS)
    assert len(records) == ANY_EVENTS

    by_run: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for record in records:
        event = default_codec().decode(record.value)
        assert isinstance(event.payload, AssistantText)
        assert event.run_id is not None
        assert record.key == event.run_id.encode()
        by_run[event.run_id].append((record.partition, record.offset, event.payload.text))
    assert sorted(by_run) == runs
    for run_id, seen in by_run.items():
        assert len({partition for partition, _, _ in seen}) == 1, f"{run_id} spans partitions"
        assert [int(text) for _, _, text in seen] == list(range(per_run)), run_id

    # Every returned position is where the event really is.
    where = {(r.partition, r.offset): default_codec().decode(r.value).event_id for r in records}
    for event, position in published:
        assert position.topic == settings.run_events
        assert where[(position.partition, position.offset)] == event.event_id


async def test_a_message_published_as_a_batch_is_contiguous(settings: Settings) -> None:
    run_id = "run-batch"
    message = [
        Event.create(Thinking(text="t", signature="s", index=0, final=True), run_id=run_id),
        Event.create(AssistantText(text="calling tools"), run_id=run_id),
        *(
            Event.create(ToolUse(id=f"toolu_{i}", name="lookup", input={"i": i}), run_id=run_id)
            for i in range(5)
        ),
    ]
    async with Publisher(settings) as publisher:
        stop = asyncio.Event()

        async def noise() -> int:
            sent = 0
            while not stop.is_set():
                await publisher.publish_many(
                    [
                        Event.create(UserMessage(parts=[str(sent + i)]), run_id=run_id)
                        for i in range(20)
                    ]
                )
                sent += 20
            return sent

        noisy = [asyncio.create_task(noise()) for _ in range(3)]
        await asyncio.sleep(0.2)
        positions = await publisher.publish_message(message)
        await asyncio.sleep(0.2)
        stop.set()
        noise_count = sum(await asyncio.gather(*noisy))

    assert noise_count > 0
    partition = positions[0].partition
    offsets = [p.offset for p in positions]
    assert {p.partition for p in positions} == {partition}
    assert offsets == list(range(offsets[0], offsets[0] + len(message)))

    records = await read_topic(settings, settings.run_events, noise_count + len(message))
    on_partition = [r for r in records if r.partition == partition]
    at = {r.offset: default_codec().decode(r.value) for r in on_partition}
    assert [at[o] for o in offsets] == message
    # Noise landed before and after the message, never inside it.
    assert min(at) < offsets[0] or max(at) > offsets[-1]


async def test_a_retried_event_is_a_duplicate_with_the_same_event_id(settings: Settings) -> None:
    """A producer that crashed after publishing rebuilds the same event: same id, twice in the log."""

    def answer() -> Event:
        # What a producer derives from its input (run, cause, index): nothing random.
        return Event.create(
            AssistantText(text="42"), run_id="run-r", causation_id="cause-1", index=0
        )

    first, retried = answer(), answer()
    assert first.event_id == retried.event_id
    async with Publisher(settings) as publisher:
        a = await publisher.publish(first)
    async with Publisher(settings) as publisher:  # "after the crash"
        b = await publisher.publish(retried)
    assert (a.partition, b.offset) == (b.partition, a.offset + 1)
    records = await read_topic(settings, settings.run_events, 2)
    ids = [default_codec().decode(r.value).event_id for r in records]
    assert ids == [first.event_id, first.event_id]
    header_ids = [dict(r.headers)["runwire-event-id"].decode() for r in records]
    assert header_ids == ids


async def test_records_carry_type_and_fingerprint_headers_and_keys(settings: Settings) -> None:
    session = Event.create(SessionCreated(user_id="u", metadata={"a": 1}), session_id="sess-1")
    async with Publisher(settings) as publisher:
        position = await publisher.publish(session)
    assert position.topic == settings.session_events
    (record,) = await read_topic(settings, settings.session_events, 1)
    assert record.key == b"sess-1"
    headers = dict(record.headers)
    assert headers["runwire-type"] == b"session_created"
    assert headers["runwire-schema"] == record.value[2:10].hex().encode()
    assert default_codec().decode(record.value) == session


async def test_memory_deletes_are_tombstones_that_decode_back(settings: Settings) -> None:
    set_event = Event.create(MemorySet(scope="user", owner="u1", key="lang", value="fr"))
    deleted = Event.create(MemoryDeleted(scope="user", owner="u1", key="lang"), producer="svc")
    async with Publisher(settings) as publisher:
        await publisher.publish(set_event)
        await publisher.publish(deleted)
    records = await read_topic(settings, settings.memory, 2)
    assert [r.key for r in records] == [memory_key("user", "u1", "lang")] * 2
    assert records[1].value is None
    events = [
        event_of_record(default_codec(), r.key, r.value, r.headers, tombstones=True)
        for r in records
    ]
    assert events == [set_event, deleted]


async def test_the_cli_publishes_a_json_lines_file(settings: Settings, tmp_path: Path) -> None:
    lines = [
        {"type": "user_message", "run_id": "run-cli", "payload": {"parts": ["hi"]}},
        {
            "type": "thinking",
            "run_id": "run-cli",
            "payload": {"redacted": "AP8Q", "index": 0, "final": True},
        },
        {"type": "assistant_text", "run_id": "run-cli", "payload": {"text": "hello"}},
    ]
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    env = {
        **os.environ,
        "RUNWIRE_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "RUNWIRE_TOPIC_PREFIX": settings.topic_prefix,
    }
    runwire = str(Path(sys.executable).with_name("runwire"))
    process = await asyncio.create_subprocess_exec(
        runwire, "publish", "--json", "--message", str(source),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    printed = [json.loads(line) for line in out.decode().splitlines()]
    assert [p["type"] for p in printed] == ["user_message", "thinking", "assistant_text"]
    records = await read_topic(settings, settings.run_events, 3)
    events = [default_codec().decode(r.value) for r in records]
    assert [e.event_id for e in events] == [p["event_id"] for p in printed]
    assert isinstance(events[1].payload, Thinking)
    assert events[1].payload.redacted == b"\x00\xff\x10"
    assert {e.producer for e in events} == {"runwire-cli"}


async def test_the_cli_publishes_nothing_from_a_bad_file(
    settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "events.json"
    source.write_text(
        json.dumps(
            [
                {"type": "assistant_text", "run_id": "r", "payload": {"text": "ok"}},
                {"type": "tool_use", "run_id": "r", "payload": {"id": "t", "input": {}}},
            ]
        )
    )
    env = {
        **os.environ,
        "RUNWIRE_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "RUNWIRE_TOPIC_PREFIX": settings.topic_prefix,
    }
    runwire = str(Path(sys.executable).with_name("runwire"))
    process = await asyncio.create_subprocess_exec(
        runwire, "publish", str(source),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await process.communicate()
    assert process.returncode == 1
    assert "item 1: payload.name: Field required" in err.decode()
    async with Publisher(settings) as publisher:
        marker = await publisher.publish(Event.create(AssistantText(text="m"), run_id="r"))
    records = await read_topic(settings, settings.run_events, 1)
    assert [default_codec().decode(r.value).payload for r in records] == [AssistantText(text="m")]
    assert marker.offset == 0


async def test_a_message_too_big_for_one_batch_is_refused_whole(settings: Settings) -> None:
    small_batches = settings.model_copy(update={"producer_max_batch_bytes": 4_000})
    message = [Event.create(AssistantText(text=f"{i}" * 1_500), run_id="run-big") for i in range(5)]
    async with Publisher(small_batches) as publisher:
        with pytest.raises(PublishError, match="producer_max_batch_bytes=4000") as info:
            await publisher.publish_message(message)
        assert info.value.retriable is False
        marker = await publisher.publish(Event.create(AssistantText(text="m"), run_id="run-big"))
    assert marker.offset == 0  # nothing of the message reached the log


async def _partition_count(settings: Settings, topic: str) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        return len(await producer.partitions_for(topic))
    finally:
        await producer.stop()


async def test_many_concurrent_messages_on_one_partition_all_land_contiguous(
    settings: Settings,
) -> None:
    """200 messages at once on one partition: aiokafka alone times out from about 40."""
    partitions = list(range(await _partition_count(settings, settings.run_events)))
    partitioner = DefaultPartitioner()
    candidates = (f"run-{i}" for i in range(100_000))
    runs = [r for r in candidates if partitioner(r.encode(), partitions, partitions) == 0][:100]
    assert len(runs) == 100
    rounds = 2  # per run, one message after the other; 200 calls in flight at once

    def message(run_id: str, seq: int) -> list[Event]:
        return [
            Event.create(
                Thinking(text=f"{seq}", signature="s", index=0, final=True), run_id=run_id
            ),
            Event.create(AssistantText(text=f"{seq}"), run_id=run_id),
            Event.create(
                ToolUse(id=f"toolu_{seq}", name="lookup", input={"seq": seq}), run_id=run_id
            ),
        ]

    async with Publisher(settings) as publisher:

        async def one_run(run_id: str, seq: int) -> list[tuple[list[Event], list[Position]]]:
            done = []
            for s in range(seq, seq + rounds):
                events = message(run_id, s)
                done.append((events, await publisher.publish_message(events)))
            return done

        # Two tasks per run (messages 0-1 and 2-3): 200 concurrent calls.
        results = await asyncio.gather(*(one_run(r, start) for start in (0, 2) for r in runs))

    published = [pair for result in results for pair in result]
    assert len(published) == 400
    for _, positions in published:
        assert {p.partition for p in positions} == {0}
        offsets = [p.offset for p in positions]
        assert offsets == list(range(offsets[0], offsets[0] + 3))

    total = 400 * 3
    records = await read_topic(settings, settings.run_events, total)
    assert len(records) == total
    assert {r.partition for r in records} == {0}
    at = {r.offset: default_codec().decode(r.value) for r in records}
    ids = [e.event_id for e in at.values()]
    assert len(ids) == len(set(ids)) == total  # every event once
    for events, positions in published:
        assert [at[p.offset] for p in positions] == events
    # Per run, the messages one task published one after the other keep their order.
    by_run: dict[str, list[str]] = defaultdict(list)
    for offset in sorted(at):
        event = at[offset]
        assert event.run_id is not None
        if isinstance(event.payload, AssistantText):
            by_run[event.run_id].append(event.payload.text)
    for run_id in runs:
        seen = by_run[run_id]
        assert sorted(seen) == ["0", "1", "2", "3"], run_id
        assert seen.index("0") < seen.index("1"), run_id
        assert seen.index("2") < seen.index("3"), run_id
