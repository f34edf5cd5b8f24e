"""A rebuild dead-letters what it cannot read, as a served projector does."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from runwire.log.partitioner import partition_for
from runwire.projections.runtime.dead_letters import list_dead_letters
from runwire.projections.runtime.pg import Pool
from runwire.projections.runtime.rebuild import rebuild
from runwire.settings import Settings
from tests.integration.projection_support import as_records, assert_runs_match, projections
from tests.support.workload import bulk_publish, synthetic_events


async def test_a_rebuild_writes_the_dead_letters_of_a_log_and_builds_the_rest(
    settings: Settings, pool: Pool
) -> None:
    workload = synthetic_events(runs=40, sessions=8, events=600, seed=11)
    runs, _ = projections(pool, settings)
    await runs.prepare()
    first = await bulk_publish(settings, workload.events[:300])
    victim = next(e.run_id for e in workload.events if e.run_id is not None)
    assert victim is not None
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        parts = sorted(await producer.partitions_for(settings.run_events))
        meta = await producer.send_and_wait(
            settings.run_events,
            b"\x00not an event",
            key=victim.encode(),
            partition=partition_for(victim.encode(), parts),
        )
    finally:
        await producer.stop()
    rest = await bulk_publish(settings, workload.events[300:])

    report = await rebuild(runs, settings)

    assert report.dead_letters == 1
    letters = await list_dead_letters(settings, consumer=f"runs-rebuild-g{report.generation}")
    assert [(d.source_topic, d.source_partition, d.source_offset) for d in letters] == [
        (meta.topic, meta.partition, meta.offset)
    ]
    assert letters[0].value == b"\x00not an event"
    # Everything else is applied, the copy past the bad record is the reference fold.
    await assert_runs_match(
        pool,
        as_records(workload.events, [*first, *rest]),
        settings.run_events,
        settings.session_events,
    )
