"""One copy filled by two projectors side by side, each on its own partitions."""

from __future__ import annotations

import asyncio

import pytest

from runwire.errors import ConfigurationError
from runwire.log.records import TopicPartition
from runwire.projections.runtime.consumer import Projector
from runwire.projections.runtime.pg import Pool
from runwire.projections.runtime.rebuild import REBUILD_OPTIONS
from runwire.settings import Settings
from tests.integration.projection_support import as_records, assert_runs_match, projections
from tests.support.workload import bulk_publish, synthetic_events


async def _fill(projector: Projector) -> None:
    """Apply until every partition of the projector is at its log end."""
    ends = await projector.end_offsets()
    while any(projector.positions().get(tp, 0) < end for tp, end in ends.items()):
        await projector.step(timeout_ms=500)


async def test_two_projectors_on_disjoint_partitions_build_the_reference_copy(
    settings: Settings, pool: Pool
) -> None:
    workload = synthetic_events(runs=300, sessions=40, events=6000, seed=3)
    positions = await bulk_publish(settings, workload.events)
    runs, _ = projections(pool, settings)
    copy = await runs.begin_rebuild()
    async with Projector(copy.projection, settings, assignment="all") as probe:
        every = await probe.partitions()
    halves = [every[0::2], every[1::2]]
    fillers = [
        Projector(
            copy.projection, settings, assignment="all", partitions=half, options=REBUILD_OPTIONS
        )
        for half in halves
    ]
    async with fillers[0] as first, fillers[1] as second:
        assert first.assigned() == set(halves[0])
        assert second.assigned() == set(halves[1])
        await asyncio.gather(_fill(first), _fill(second))
        assert first.stats.records + second.stats.records >= len(workload.events)
    assert await copy.try_switch()
    await assert_runs_match(
        pool,
        as_records(workload.events, positions),
        settings.run_events,
        settings.session_events,
    )


async def test_partitions_must_be_the_projections_and_need_assignment_all(
    settings: Settings, pool: Pool
) -> None:
    runs, _ = projections(pool, settings)
    await runs.prepare()
    with pytest.raises(ConfigurationError, match="only chosen with assignment='all'"):
        Projector(runs, settings, partitions=[])
    stranger = Projector(
        runs, settings, assignment="all", partitions=[TopicPartition("no-such-topic", 0)]
    )
    with pytest.raises(ConfigurationError, match="no-such-topic/0"):
        await stranger.start()
