"""The projector's pipeline: what arrives during an apply goes with the next batch."""

from __future__ import annotations

import asyncio

from runwire.log.records import SourceRecord
from runwire.projections.runtime.pg import Pool
from runwire.projections.runtime.protocol import ApplyResult, Batch, DeadLetterSink
from runwire.settings import Settings
from tests.helpers import assert_eventually
from tests.integration.projection_support import caught_up, projections, running
from tests.support.workload import bulk_publish, synthetic_events


class _Reads:
    """A log hook counting the records the projector has decoded."""

    def __init__(self) -> None:
        self.count = 0

    def writing(self, event: object, topic: str, headers: object) -> None:
        pass

    def read(self, record: SourceRecord) -> None:
        self.count += 1


async def test_records_arriving_during_an_apply_all_go_with_the_next_batch(
    settings: Settings, pool: Pool
) -> None:
    from runwire.log import hooks

    workload = synthetic_events(runs=40, sessions=8, events=600, seed=5, duplicate_rate=0)
    first, later = workload.events[:100], workload.events[100:]
    runs, _ = projections(pool, settings)
    await runs.prepare()
    apply = runs.apply
    release = asyncio.Event()
    batches: list[int] = []

    async def held(batch: Batch, sink: DeadLetterSink) -> ApplyResult:
        batches.append(len(batch.records))
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
            held_back = sum(batches)
            # Several writes, so that they reach the consumer in several fetches.
            for n in range(0, len(later), 50):
                await bulk_publish(settings, later[n : n + 50])
            total = len(first) + len(later)

            def all_read() -> bool:
                assert reads.count >= total, reads.count
                return True

            await assert_eventually(all_read, timeout=60)
            release.set()
            await caught_up(runs, settings)
            assert projector.stats.records == total
    finally:
        hooks.uninstall(reads)
    # Everything read while the first batch was held went with the second one.
    assert len(batches) >= 2
    assert batches[1] == total - held_back, batches
