"""Erasure in the run-status projection under concurrency, on the real Postgres.

Two writers of one copy, as two instances owning different partitions would
be: one folds run events of a run that carry no session id, or another
session's (only the run's row says whose it is), the other the deletion of
that run's session, at the same time. Whichever commits first, the run ends
erased.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from runwire.contract.events import Event, RunStarted, SessionDeleted, Usage
from runwire.log.records import TopicPartition
from runwire.projections.runs.projection import RunsProjection
from runwire.projections.runtime.pg import Pool, open_pool
from runwire.settings import Settings
from tests.contract.projections import RecordingSink
from tests.integration.projection_support import batch, table


@pytest_asyncio.fixture(loop_scope="session")
async def pool(settings: Settings) -> AsyncIterator[Pool]:
    pool = await open_pool(settings, max_size=24)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.mark.parametrize("named", [None, "another"], ids=["no-session", "another-session"])
async def test_a_deletion_beside_run_events_not_naming_it_erases_the_run(
    settings: Settings, pool: Pool, named: str | None
) -> None:
    projection = RunsProjection(pool, settings)
    await projection.prepare()
    sink = RecordingSink()
    rng = random.Random(7)
    n = 40
    # Each run on its own run-events partition, each deletion on its own
    # session-events partition: the writers share no position row.
    run_tp = [TopicPartition(settings.run_events, 100 + i) for i in range(n)]
    session_tp = [TopicPartition(settings.session_events, 100 + i) for i in range(n)]
    for i in range(n):
        started = Event.create(RunStarted(agent_id="a"), run_id=f"r{i}", session_id=f"s{i}")
        await projection.apply(batch(run_tp[i], 0, [started]), sink)
    (count,) = await table(pool, "SELECT count(*) AS n FROM run_status")
    assert count["n"] == n

    async def later_run_events(i: int) -> None:
        await asyncio.sleep(rng.random() * 0.05)
        usage = [
            Event.create(
                Usage(model="m", provider="p", input_tokens=1),
                run_id=f"r{i}",
                session_id=None if named is None else f"{named}-{i}",
            )
            for _ in range(3)
        ]
        await projection.apply(batch(run_tp[i], 1, usage), sink)

    async def deletion(i: int) -> None:
        await asyncio.sleep(rng.random() * 0.05)
        deleted = Event.create(SessionDeleted(), session_id=f"s{i}")
        await projection.apply(batch(session_tp[i], 0, [deleted]), sink)

    await asyncio.gather(*(f(i) for i in range(n) for f in (later_run_events, deletion)))
    assert sink.sent == []
    assert await table(pool, "SELECT run_id FROM run_status") == []
    erased = await table(pool, "SELECT run_id, session_id FROM run_status_erased_runs__g1")
    assert {r["run_id"]: r["session_id"] for r in erased} == {f"r{i}": f"s{i}" for i in range(n)}
