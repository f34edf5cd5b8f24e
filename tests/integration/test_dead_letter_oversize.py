"""A dead letter is always writable: a record too big for the dead-letter topic
is dead-lettered as a truncated copy with its coordinates and digest, and the
projector goes on."""

from __future__ import annotations

import hashlib

from aiokafka import AIOKafkaProducer

from runwire.contract.codec import default_codec
from runwire.contract.events import Event, UserMessage
from runwire.projections.runtime.dead_letters import list_dead_letters
from runwire.projections.runtime.pg import Pool
from runwire.settings import Settings
from tests.integration.projection_support import caught_up, projections, running, table

MB = 1_000_000


async def test_oversize_records_are_dead_lettered_and_the_projector_goes_on(
    settings: Settings, pool: Pool
) -> None:
    runs, _ = projections(pool, settings)
    await runs.prepare()
    # A 3 MB value the broker accepts because it compresses well, and a valid
    # event just under 1 MiB under the wrong key: neither fits the dead-letter
    # topic (1,048,588 bytes) with the dead letter's headers.
    huge = b"not an event; " * (3 * MB // 14)
    big = Event.create(UserMessage(parts=["x" * 1_048_200]), run_id="r-big", session_id="s-1")
    big_value = default_codec().encode(big)
    assert 1_048_000 < len(big_value) < 1_048_576
    good = Event.create(UserMessage(parts=["hello"]), run_id="r-good", session_id="s-1")
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        compression_type="gzip",
        max_request_size=8 * MB,
    )
    await producer.start()
    try:
        huge_at = await producer.send_and_wait(settings.run_events, huge, key=b"r-huge")
        big_at = await producer.send_and_wait(settings.run_events, big_value, key=b"not-r-big")
    finally:
        await producer.stop()

    async with running(runs, settings):
        await caught_up(runs, settings, within=60)
        # A good event after them is applied: nothing is stalled.
        async with AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers) as p:
            await p.send_and_wait(settings.run_events, default_codec().encode(good), key=b"r-good")
        await caught_up(runs, settings, within=60)
    rows = await table(pool, "SELECT run_id FROM run_status WHERE run_id = 'r-good'")
    assert len(rows) == 1

    letters = {(d.source_partition, d.source_offset): d for d in await list_dead_letters(settings)}
    huge_letter = letters[(huge_at.partition, huge_at.offset)]
    big_letter = letters[(big_at.partition, big_at.offset)]
    assert huge_letter.reason == "bad_magic"
    assert big_letter.reason == "key_mismatch"
    for letter, original in ((huge_letter, huge), (big_letter, big_value)):
        assert letter.consumer == "runs"
        assert letter.source_topic == settings.run_events
        assert letter.truncated_from == len(original)
        assert letter.sha256 == hashlib.sha256(original).hexdigest()
        # As much as fits the topic's limit (max.message.bytes, 1,048,588 by default).
        assert MB // 2 < len(letter.value) < 1_048_588
        assert original.startswith(letter.value)
    assert big_letter.key == b"not-r-big"
