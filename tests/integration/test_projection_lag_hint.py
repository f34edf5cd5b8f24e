"""The Kafka lag hint after a projector stops: it equals the stored positions.

The projections' positions live in their store (the truth); the consumer
group's committed offsets are only a hint for lag tools. After a clean stop
the hint must say exactly where the projection is, for every partition.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

from runwire.log.records import TopicPartition
from runwire.projections.runtime.lag import ProjectionLag, projection_lag
from runwire.projections.runtime.pg import Pool
from runwire.settings import Settings
from tests.helpers import assert_eventually
from tests.integration.projection_support import FAST, caught_up, projections, running
from tests.support.workload import bulk_publish, synthetic_events

ROUNDS = 4
# An instance that hints once, right after its assignment, and whose stop
# gives up at once: its hint trails, the case the projector documents.
NO_LAST_HINT = dataclasses.replace(FAST, commit_interval=3600.0, stop_timeout=0.0)


def hint_differences(lag: ProjectionLag) -> list[str]:
    return [
        f"{p.topic}/{p.partition}: committed {p.committed}, stored {p.position}"
        for p in lag.partitions
        if p.committed != p.position
    ]


async def test_after_a_clean_stop_the_hint_is_the_stored_positions(
    settings: Settings, pool: Pool
) -> None:
    runs, sessions = projections(pool, settings)
    await runs.prepare()
    await sessions.prepare()
    for round_ in range(ROUNDS):
        workload = synthetic_events(runs=30, sessions=6, events=600, seed=round_)
        await bulk_publish(settings, workload.events)
        # Stopped as soon as the stored positions reach the log end: the last
        # batch's hint is the one a stop used to lose.
        async with running(runs, settings), running(sessions, settings):
            await caught_up(runs, settings)
            await caught_up(sessions, settings)
        for projection in (runs, sessions):
            lag = await projection_lag(projection, settings)
            assert lag.lag == 0
            assert any(p.position > 0 for p in lag.partitions)
            assert not hint_differences(lag), (round_, projection.name, hint_differences(lag))


async def test_a_hint_left_behind_trails_and_the_next_owner_corrects_it(
    settings: Settings, pool: Pool
) -> None:
    runs, _ = projections(pool, settings)
    await runs.prepare()
    async with running(runs, settings) as first:
        async with running(runs, settings, NO_LAST_HINT) as second:

            async def both_assigned_and_hinted() -> bool:
                lag = await projection_lag(runs, settings)
                assert first.assigned()
                assert second.assigned()
                # Disjoint: both have joined the same generation. Until the
                # first learns of the rebalance it still owns (and hints) all.
                assert not first.assigned() & second.assigned()
                assert len(first.assigned() | second.assigned()) == len(lag.partitions)
                # Each instance's first hint after its assignment: the stored
                # positions (nothing stored yet), for every partition. The
                # second's own, not only the first's from before it joined
                # (else its first hint could come after the batch below).
                assert second.stats.hints >= 1
                assert [p.committed for p in lag.partitions] == [0] * len(lag.partitions)
                return True

            await assert_eventually(both_assigned_and_hinted, timeout=60, interval=0.2)
            mine = second.assigned()
            workload = synthetic_events(runs=30, sessions=6, events=600, seed=7)
            await bulk_publish(settings, workload.events)
            await caught_up(runs, settings)
            # While the second instance still owns its partitions, their hint
            # trails at the positions of its first hint: it hints once an hour.
            lag = await projection_lag(runs, settings)
            left = [p for p in lag.partitions if TopicPartition(p.topic, p.partition) in mine]
            assert any(p.position > 0 for p in left)
            assert [p.committed for p in left] == [0] * len(left)
        # The second instance stopped without its last hint (stop_timeout 0).
        # From here the first instance may take its partitions over at any
        # moment, so each hint either still trails at the first hint or is
        # already the stored position; never ahead, never a later batch's.
        lag = await projection_lag(runs, settings)
        left = [p for p in lag.partitions if TopicPartition(p.topic, p.partition) in mine]
        assert all(p.committed in (0, p.position) for p in left), [
            (p.partition, p.committed, p.position) for p in left
        ]

        # The first instance takes those partitions over and, with no new
        # record to apply, hints their stored positions.
        async def corrected() -> bool:
            lag = await projection_lag(runs, settings)
            assert len(first.assigned()) == len(lag.partitions)
            assert not hint_differences(lag), hint_differences(lag)
            return True

        await assert_eventually(corrected, timeout=60, interval=0.2)
    lag = await projection_lag(runs, settings)
    assert not hint_differences(lag), hint_differences(lag)


async def test_stop_does_not_wait_out_a_poll_and_still_hints_the_stored_positions(
    settings: Settings, pool: Pool
) -> None:
    """An idle projector polls for long; stop() interrupts the poll (a batch fetched
    then would never be applied) instead of waiting for it, and still hints."""
    runs, _ = projections(pool, settings)
    await runs.prepare()
    await bulk_publish(settings, synthetic_events(runs=10, sessions=2, events=200, seed=5).events)
    long_poll = dataclasses.replace(FAST, poll_timeout_ms=60_000, stop_timeout=45.0)
    async with running(runs, settings, long_poll) as projector:
        await caught_up(runs, settings)
        await asyncio.sleep(0.5)  # the loop is in its next (idle) poll
        started = time.monotonic()
        await projector.stop()
        stopped_in = time.monotonic() - started
    assert stopped_in < 30, f"stop waited {stopped_in:.1f}s: it sat out the 60 s poll"
    lag = await projection_lag(runs, settings)
    assert any(p.position > 0 for p in lag.partitions)
    assert not hint_differences(lag), hint_differences(lag)
