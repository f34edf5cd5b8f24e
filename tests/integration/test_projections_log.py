"""The Postgres projections against the pure fold, over a large log, with replays."""

from __future__ import annotations

import random

from runwire.projections.runtime.pg import Pool
from runwire.settings import Settings
from tests.integration.projection_support import (
    as_records,
    assert_runs_match,
    assert_sessions_match,
    caught_up,
    checksums,
    projections,
    running,
)
from tests.support.reference import fold_runs
from tests.support.workload import bulk_publish, synthetic_events

EVENTS, RUNS, SESSIONS = 50_000, 2_000, 300


async def test_a_large_log_folds_to_the_reference_and_replays_change_nothing(
    settings: Settings, pool: Pool
) -> None:
    workload = synthetic_events(runs=RUNS, sessions=SESSIONS, events=EVENTS, seed=1)
    runs, sessions = projections(pool, settings)
    await runs.prepare()
    await sessions.prepare()
    async with running(runs, settings) as run_projector, running(sessions, settings):
        positions = await bulk_publish(settings, workload.events)
        await caught_up(runs, settings)
        await caught_up(sessions, settings)
    assert run_projector.stats.duplicates > 0  # re-published events were dropped
    records = as_records(workload.events, positions)
    expected_runs = await assert_runs_match(
        pool, records, settings.run_events, settings.session_events
    )
    expected_sessions = await assert_sessions_match(pool, records, settings.session_events)
    assert len(fold_runs(records, settings.run_events).rows) == RUNS
    assert len(expected_runs.rows) < RUNS, "the runs of deleted sessions are gone"
    assert expected_sessions.tombstones, "the workload deletes some sessions"
    before = await checksums(pool)

    # Replay over live data: positions of a third of the partitions back to 0,
    # and identical events re-published.
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE runwire_projection_positions SET next_offset = 0 WHERE partition % 3 = 0"
        )
    again = random.Random(7).sample(workload.events, 2_000)
    await bulk_publish(settings, again)
    async with running(runs, settings) as run_projector, running(sessions, settings) as s_proj:
        await caught_up(runs, settings)
        await caught_up(sessions, settings)
    assert run_projector.stats.applied == 0
    assert s_proj.stats.applied < s_proj.stats.records  # only order-free run events re-fold
    assert run_projector.stats.duplicates > len(again) // 2
    assert await checksums(pool) == before
