"""The projector's pipeline: what arrives during an apply goes with the next batch."""

from __future__ import annotations

import asyncio

from runwire.log import hooks
from runwire.log.records import SourceRecord
from runwire.projections.runtime.pg import Pool
from runwire.projections.runtime.protocol import ApplyResult, Batch, DeadLetterSink
from runwire.settings import Settings
from tests.helpers import assert_eventually
from tests.integration.projection_support import caught_up, projections, running
from tests.support.workload import bulk_publish, synthetic_events

Where = tuple[str, int, int]


class _Reads:
    """A log hook noting the records the projector has decoded."""

    def __init__(self) -> None:
        self.seen: set[Where] = set()

    def writing(self, event: object, topic: str, headers: object) -> None:
        pass

    def read(self, record: SourceRecord) -> None:
        self.seen.add((record.topic, record.partition, record.offset))


async def test_records_arriving_during_an_apply_all_go_with_the_next_batch(
    settings: Settings, pool: Pool
) -> None:
    workload = synthetic_events(runs=40, sessions=8, events=600, seed=5, duplicate_rate=0)
    first, later = workload.events[:100], workload.events[100:]
    runs, _ = projections(pool, settings)
    await runs.prepare()
    apply = runs.apply
    release = asyncio.Event()
    batches: list[set[Where]] = []

    async def held(batch: Batch, sink: DeadLetterSink) -> ApplyResult:
        batches.append({(r.topic, r.partition, r.offset) for r in batch.records})
        if len(batches) == 1:
            await release.wait()  # the first apply lasts until the later events are read
        return await apply(batch, sink)

    runs.apply = held  # type: ignore[method-assign,assignment]
    reads = _Reads()
    hooks.install(reads)
    try:
        await bulk_publish(settings, first)
        async with running(runs, settings) as projector:
            await assert_eventually(lambda: batches, timeout=60)
            # Several writes, so that they reach the consumer in several fetches.
            for n in range(0, len(later), 50):
                await bulk_publish(settings, later[n : n + 50])
            total = len(first) + len(later)

            def all_read() -> bool:
                assert len(reads.seen) >= total, len(reads.seen)
                return True

            await assert_eventually(all_read, timeout=60)
            release.set()
            await caught_up(runs, settings)

            def all_applied() -> bool:
                # The stored positions are seen by other connections as the
                # apply commits, a moment before the projector has counted it.
                assert projector.stats.applied == total, projector.stats
                return True

            await assert_eventually(all_applied, timeout=10)
    finally:
        hooks.uninstall(reads)
    # Everything read while the first batch was held went with the second one
    # (a rebalance meanwhile may have read some of the first batch's again).
    assert len(batches) >= 2
    assert len(reads.seen) == total
    assert reads.seen - batches[0] <= batches[1], len(reads.seen - batches[0] - batches[1])
