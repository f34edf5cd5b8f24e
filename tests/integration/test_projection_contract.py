"""The Projection contract against the run-status and session-index projections."""

from __future__ import annotations

from typing import Any

import pytest_asyncio
from psycopg.rows import dict_row

from runwire.contract.events import (
    Event,
)
from runwire.log.records import TopicPartition
from runwire.projections.runs.projection import RunsProjection
from runwire.projections.runtime.pg import Pool
from runwire.projections.sessions.projection import SessionsProjection
from runwire.settings import Settings
from tests.contract.projections import (
    Harness,
    ProjectionContract,
    run_scenario,
    session_scenario,
)


async def rows(pool: Pool, query: str) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(query.encode())
        return await cur.fetchall()


def run_event(payload: Any, **kw: Any) -> Event:
    return Event.create(payload, run_id="r1", session_id="s1", user_id="u1", **kw)


class TestRunStatusContract(ProjectionContract):
    @pytest_asyncio.fixture(loop_scope="session")
    async def harness(self, pool: Pool, settings: Settings) -> Harness:
        projection = RunsProjection(pool, settings)
        await projection.prepare()
        good, bad = run_scenario()

        async def state() -> Any:
            return await rows(pool, "SELECT * FROM run_status ORDER BY run_id")

        return Harness(
            projection=projection,
            tp=TopicPartition(settings.run_events, 3),
            good=good,
            bad=bad,
            key=lambda e: (e.run_id or "").encode(),
            state=state,
        )


def session_event(payload: Any, **kw: Any) -> Event:
    return Event.create(payload, session_id="s1", **kw)


class TestSessionIndexContract(ProjectionContract):
    @pytest_asyncio.fixture(loop_scope="session")
    async def harness(self, pool: Pool, settings: Settings) -> Harness:
        projection = SessionsProjection(pool, settings)
        await projection.prepare()
        good, bad = session_scenario()

        async def state() -> Any:
            return (
                await rows(pool, "SELECT * FROM session_index ORDER BY session_id"),
                await rows(pool, "SELECT * FROM session_tombstones ORDER BY session_id"),
            )

        return Harness(
            projection=projection,
            tp=TopicPartition(settings.session_events, 1),
            good=good,
            bad=bad,
            key=lambda e: (e.session_id or "").encode(),
            state=state,
        )
