"""Tailing one run live from the log (``runwire transcript RUN_ID --follow``).

Contract of :func:`follow_run`:
- Yields the run's events in log order, from its first record when the
  transcript cache or the run-status store knows where it starts, else from
  the current end of its partition (a run that has not started yet); the
  partition is the one the publisher's partitioner gives the run id.
- Ends after the run's terminal event (completed, failed, canceled), or when
  ``idle_timeout`` passes without a new event of the run (None: never).
- Records that do not decode are skipped (the projectors dead-letter them).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from aiokafka.structs import TopicPartition as KafkaTopicPartition

from runwire.contract.codec import codec_for
from runwire.contract.events import Event, EventType
from runwire.errors import DecodeError, RunwireError
from runwire.log import clients
from runwire.log.partitioner import partition_for
from runwire.projections.transcripts.miss import RunLocator
from runwire.projections.transcripts.store import Slot, TranscriptStore
from runwire.settings import Settings

TERMINAL = frozenset({EventType.RUN_COMPLETED, EventType.RUN_FAILED, EventType.RUN_CANCELED})


async def find_start(
    run_id: str, store: TranscriptStore | None, locator: RunLocator | None
) -> tuple[int, int] | None:
    """The run's (partition, first offset) if the cache or the run-status store knows it."""
    if store is not None:
        generation = await store.generation(Slot.LIVE)
        assert generation is not None
        meta = (await store.heads(generation, [run_id]))[run_id].meta
        if meta is not None:
            return meta.partition, meta.first
    if locator is not None:
        location = await locator.locate(run_id)
        if location is not None:
            return location.partition, location.first_offset
    return None


async def follow_run(
    settings: Settings,
    run_id: str,
    *,
    start: tuple[int, int] | None = None,
    idle_timeout: float | None = None,
) -> AsyncIterator[Event]:
    """Yield the run's events as they are written; see the module contract."""
    topic = settings.run_events
    key = run_id.encode()
    decoder = codec_for(settings)
    consumer = clients.consumer(
        settings,
        "follow",
        auto_offset_reset="latest",
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise RunwireError(
                f"topic {topic!r} does not exist on {settings.kafka_bootstrap_servers}"
            )
        if start is not None:
            partition, first = start
        else:
            ordered = sorted(partitions)
            partition, first = partition_for(key, ordered), None
        tp = KafkaTopicPartition(topic, partition)
        consumer.assign([tp])
        if first is None:
            await consumer.seek_to_end(tp)
        else:
            consumer.seek(tp, first)
        last_seen = time.monotonic()
        while True:
            fetched = await consumer.getmany(tp, timeout_ms=200, max_records=500)
            for record in fetched.get(tp, ()):
                if record.key != key or record.value is None:
                    continue
                try:
                    event = decoder.decode(record.value)
                except DecodeError:
                    continue
                if event.run_id != run_id:
                    continue
                last_seen = time.monotonic()
                yield event
                if event.type in TERMINAL:
                    return
            if idle_timeout is not None and time.monotonic() - last_seen > idle_timeout:
                return
    finally:
        await consumer.stop()
