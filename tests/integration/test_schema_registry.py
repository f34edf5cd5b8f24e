"""The Confluent wire format on the real broker, with a schema registry configured.

The registry is tests/fakes/schema_registry.py (the registry's REST API on
127.0.0.1); Kafka and Postgres are the test stack's.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaProducer

from runwire.contract.codec import codec_for
from runwire.contract.framing import Framing, confluent_header, read_header
from runwire.contract.registry import schema_text, subject_of
from runwire.contract.schemas import released_schemas
from runwire.projections.runtime.dead_letters import list_dead_letters
from runwire.projections.runtime.pg import Pool
from runwire.settings import Settings
from tests.fakes.schema_registry import FakeSchemaRegistry
from tests.integration.projection_support import (
    as_records,
    assert_runs_match,
    caught_up,
    projections,
    publish,
    running,
)
from tests.support.workload import read_raw, synthetic_events

pytestmark = pytest.mark.integration

UNKNOWN_ID = 987_654


@pytest.fixture
def registry() -> Iterator[FakeSchemaRegistry]:
    with FakeSchemaRegistry() as fake:
        yield fake


async def test_confluent_framed_events_fold_like_single_object_ones(
    settings: Settings, registry: FakeSchemaRegistry, pool: Pool
) -> None:
    writer = settings.model_copy(update={"schema_registry_url": registry.url})
    # The projector stands for another process: its own client, its own caches.
    reader = writer.model_copy(update={"schema_registry_timeout_seconds": 3.0})
    workload = synthetic_events(runs=40, sessions=8, events=1_200, seed=11)
    half = len(workload.events) // 2
    # First half with a registry (Confluent framing), the rest without: one log, two framings.
    placed = await publish(writer, workload.events[:half])
    placed += await publish(settings, workload.events[half:])

    # The writer registered every type when it started, each under its record name.
    subjects = registry.subjects()
    schemas = released_schemas()
    assert set(subjects) == {subject_of(schemas.latest(t)) for t in schemas.event_types()}
    raw = {
        (r.topic, r.partition, r.offset): r.value
        for r in await read_raw(settings, [settings.run_events, settings.session_events])
    }
    for n, (event, position) in enumerate(zip(workload.events, placed, strict=True)):
        value = raw[(position.topic, position.partition, position.offset)]
        header = read_header(value)
        if n < half:
            (schema_id,) = subjects[subject_of(codec_for(writer).writer_schema(event.type))]
            assert value[:5] == b"\x00" + schema_id.to_bytes(4, "big"), (n, event.type)
            assert header.framing is Framing.CONFLUENT
        else:
            assert value[:2] == b"\xc3\x01"
            assert header.fingerprint == codec_for(settings).writer_schema(event.type).fingerprint

    # A record whose id the registry never gave out.
    victim = next(e for e in workload.events if e.run_id is not None)
    assert victim.run_id is not None
    body = codec_for(settings).encode(victim)[10:]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        bad = await producer.send_and_wait(
            settings.run_events, confluent_header(UNKNOWN_ID) + body, key=victim.run_id.encode()
        )
    finally:
        await producer.stop()

    requests_before = len(registry.requests)
    runs, _ = projections(pool, reader)
    await runs.prepare()
    async with running(runs, reader):
        await caught_up(runs, reader)
    records = as_records(workload.events, placed)
    await assert_runs_match(pool, records, settings.run_events, settings.session_events)

    # The projector learnt each id it met, once each, and asked nothing else.
    asked = registry.requests[requests_before:]
    written = {ids[0] for ids in subjects.values()}
    used = {
        read_header(value).schema_id
        for value in raw.values()
        if read_header(value).framing is Framing.CONFLUENT
    }
    assert used <= written
    assert sorted(path for _, path in asked) == sorted(
        f"/schemas/ids/{i}" for i in used | {UNKNOWN_ID}
    )
    assert {method for method, _ in asked} == {"GET"}

    letters = [r for r in await list_dead_letters(settings) if r.consumer == "runs"]
    assert [(r.source_partition, r.source_offset) for r in letters] == [(bad.partition, bad.offset)]
    (letter,) = letters
    assert letter.reason == "unknown_schema_id"
    assert f"schema id {UNKNOWN_ID} not found" in letter.message
    assert registry.url in letter.message
    assert letter.value == confluent_header(UNKNOWN_ID) + body


async def test_a_run_goes_end_to_end_on_the_confluent_wire_format(
    settings: Settings, registry: FakeSchemaRegistry
) -> None:
    """Client -> orchestrator -> tool runner -> orchestrator, every record framed by the registry."""
    from runwire.client import Client
    from runwire.contract.events import EventType, RunStatus
    from runwire.services.orchestrator.wiring import orchestrator_service
    from runwire.services.tools.wiring import tool_runner_service

    configured = settings.model_copy(update={"schema_registry_url": registry.url})
    async with (
        orchestrator_service(configured, history=False),
        tool_runner_service(configured),
        Client(configured) as rw,
    ):
        handle = await rw.run("helper", "what is 12 * (3 + 4)?", session_id="s1")
        outcome = await handle.wait(timeout=60)
    assert outcome.status is RunStatus.COMPLETED, outcome.events
    assert {EventType.TOOL_USE, EventType.TOOL_RESULT} <= {e.type for e in outcome.events}
    assert "84" in outcome.text
    ids = {ids[0] for ids in registry.subjects().values()}
    values = [r.value for r in await read_raw(settings, [settings.run_events])]
    assert len(values) == len(outcome.events)
    assert all(v[:1] == b"\x00" and read_header(v).schema_id in ids for v in values)


async def test_a_follower_waits_out_a_registry_outage_and_skips_nothing(
    settings: Settings, registry: FakeSchemaRegistry
) -> None:
    """The orchestrator meets a schema id it has never seen while the registry fails:
    it reads the record again once the registry answers, and the run goes on."""
    from runwire.client import Client
    from runwire.contract.events import EventType, RunStatus
    from runwire.services.orchestrator.wiring import orchestrator_service
    from runwire.services.tools.wiring import tool_runner_service

    configured = settings.model_copy(update={"schema_registry_url": registry.url})
    user_message = released_schemas().latest(EventType.USER_MESSAGE)
    async with orchestrator_service(configured, history=False), tool_runner_service(configured):
        # Another producer's registration: the same schema now answers to an id the
        # running orchestrator has never looked up.
        registry.add(schema_text(user_message), UNKNOWN_ID, subject=subject_of(user_message))
        # The client stands for that producer's process: its own registry client and caches.
        producer = configured.model_copy(update={"schema_registry_timeout_seconds": 3.0})
        async with Client(producer) as rw:
            registry.fail_next(2)
            handle = await rw.run("helper", "what is 6 * 7?", session_id="s1")
            outcome = await handle.wait(timeout=60)
    assert outcome.status is RunStatus.COMPLETED, outcome.events
    assert "42" in outcome.text
    fetches = [p for m, p in registry.requests if m == "GET" and p == f"/schemas/ids/{UNKNOWN_ID}"]
    assert len(fetches) >= 2  # one refused, then the retry that got it
    values = [r.value for r in await read_raw(settings, [settings.run_events])]
    assert sum(read_header(v).schema_id == UNKNOWN_ID for v in values) == 1


async def test_session_callbacks_wait_out_a_registry_outage(
    settings: Settings, registry: FakeSchemaRegistry
) -> None:
    """A change whose schema id cannot be fetched yet reaches the callback late, not never."""
    from runwire.contract.events import Event, EventType, SessionMetadataSet
    from runwire.log import Publisher
    from runwire.sessions.protocol import SessionChange
    from runwire.sessions.watcher import LogWatcher
    from tests.helpers import assert_eventually

    configured = settings.model_copy(update={"schema_registry_url": registry.url})
    schema = released_schemas().latest(EventType.SESSION_METADATA_SET)
    heard: list[SessionChange] = []
    watcher = LogWatcher(configured)
    watcher.add("s1", heard.append)
    try:
        registry.add(schema_text(schema), UNKNOWN_ID, subject=subject_of(schema))
        producer = configured.model_copy(update={"schema_registry_timeout_seconds": 3.0})
        async with Publisher(producer) as publisher:
            registry.fail_next(2)
            for n in range(3):
                event = Event.create(SessionMetadataSet(key=f"k{n}", value=n), session_id="s1")
                await publisher.publish(event)
        await assert_eventually(lambda: len(heard) == 3, timeout=20)
    finally:
        await watcher.stop()
    assert [c.key for c in heard] == ["k0", "k1", "k2"]
    fetches = [p for m, p in registry.requests if m == "GET" and p == f"/schemas/ids/{UNKNOWN_ID}"]
    assert len(fetches) >= 2


async def test_a_live_reader_waits_out_a_registry_outage(
    settings: Settings, registry: FakeSchemaRegistry
) -> None:
    """``handle.events()`` gets every event of the run, the one it could not decode at first too."""
    import asyncio

    from runwire.client import Client
    from runwire.contract.events import (
        AssistantText,
        Event,
        EventType,
        RunCompleted,
        RunStarted,
        UserMessage,
    )
    from runwire.log import Publisher

    configured = settings.model_copy(update={"schema_registry_url": registry.url})
    schema = released_schemas().latest(EventType.USER_MESSAGE)
    payloads = [
        RunStarted(agent_id="a"),
        UserMessage(parts=["hi"]),
        AssistantText(text="hello"),
        RunCompleted(),
    ]
    events = [Event.create(p, run_id="r1", session_id="s1") for p in payloads]
    async with Client(configured) as rw:
        stream = await rw.handle("r1").events()
        registry.add(schema_text(schema), UNKNOWN_ID, subject=subject_of(schema))
        producer = configured.model_copy(update={"schema_registry_timeout_seconds": 3.0})
        async with Publisher(producer) as publisher:
            registry.fail_next(2)
            await publisher.publish_message(events)

        async def read() -> list[Event]:
            return [event async for event in stream]

        got = await asyncio.wait_for(read(), timeout=20)
    assert [e.event_id for e in got] == [e.event_id for e in events]
    fetches = [p for m, p in registry.requests if m == "GET" and p == f"/schemas/ids/{UNKNOWN_ID}"]
    assert len(fetches) >= 2
