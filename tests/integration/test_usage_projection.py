"""The usage read model on Postgres: the Projection contract and the usage contract."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from runwire.contract.routing import record_key
from runwire.log.records import TopicPartition
from runwire.projections.runtime.pg import Pool
from runwire.projections.usage.projection import UsageProjection
from runwire.projections.usage.reader import UsageStore
from runwire.settings import Settings
from tests.contract.projections import Harness, ProjectionContract
from tests.contract.usage import Rig, UsageContract, usage_scenario
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
        async with UsageStore(pool, settings) as store:
            yield Rig(projection, store, settings.run_events, settings.session_events)
