"""The usage read model on Postgres: the Projection contract and the usage contract."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from runwire.contract.routing import record_key
from runwire.log.records import SourceRecord, TopicPartition
from runwire.projections.runtime.pg import Pool
from runwire.projections.runtime.protocol import Batch
from runwire.projections.usage.projection import UsageProjection
from runwire.projections.usage.reader import UsageStore
from runwire.settings import Settings
from tests.contract.projections import Harness, ProjectionContract, RecordingSink
from tests.contract.usage import Rig, UsageContract, deletion, usage, usage_scenario
from tests.integration.test_projection_contract import rows


class TestUsageProjectionContract(ProjectionContract):
    @pytest_asyncio.fixture(loop_scope="session")
    async def harness(self, pool: Pool, settings: Settings) -> Harness:
        projection = UsageProjection(pool, settings)
        await projection.prepare()
        good, bad = usage_scenario()

        async def state() -> Any:
            return (
                await rows(pool, "SELECT * FROM usage_rollup ORDER BY run_id, model, day"),
                await rows(pool, "SELECT * FROM usage_deleted_sessions__g1 ORDER BY 1"),
            )

        return Harness(
            projection=projection,
            tp=TopicPartition(settings.run_events, 3),
            good=good,
            bad=bad,
            key=record_key,
            state=state,
        )


class TestUsageStore(UsageContract):
    @pytest_asyncio.fixture(loop_scope="session")
    async def rig(self, pool: Pool, settings: Settings) -> AsyncIterator[Rig]:  # type: ignore[override]
        projection = UsageProjection(pool, settings)
        await projection.prepare()
        # The contract's usage is of several tenants (and none): read as the admin.
        async with UsageStore(pool, settings, admin=True) as store:
            yield Rig(projection, store, settings.run_events, settings.session_events)


async def test_a_deletion_racing_usage_of_its_session_leaves_no_row(
    pool: Pool, settings: Settings
) -> None:
    """Two instances: one applies a session's usage (run-events), the other its deletion
    (session-events), at the same time, again and again. Whichever commits first, the
    session's usage ends up gone: the per-session lock orders the two."""
    projection = UsageProjection(pool, settings)
    await projection.prepare()
    run_tp = TopicPartition(settings.run_events, 0)
    session_tp = TopicPartition(settings.session_events, 0)
    rounds = 40
    for i in range(rounds):
        used = usage(f"r{i}", session=f"s{i}")
        gone = deletion(f"s{i}")
        await asyncio.gather(
            projection.apply(
                Batch(
                    records=[SourceRecord(run_tp.topic, 0, i, 0, record_key(used), b"", (), used)],
                    next_positions={run_tp: i + 1},
                    expected={run_tp: i},
                ),
                RecordingSink(),
            ),
            projection.apply(
                Batch(
                    records=[
                        SourceRecord(session_tp.topic, 0, i, 0, record_key(gone), b"", (), gone)
                    ],
                    next_positions={session_tp: i + 1},
                    expected={session_tp: i},
                ),
                RecordingSink(),
            ),
        )
    async with UsageStore(pool, settings, admin=True) as store:
        assert await store.summary(by="session", limit=1000) == []
    assert len(await rows(pool, "SELECT * FROM usage_deleted_sessions__g1")) == rounds
