"""The Projection contract against the run-status and session-index projections."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from psycopg.rows import dict_row

from runwire.contract.events import (
    Event,
    RunCompleted,
    RunStarted,
    SessionCreated,
    SessionEnded,
    SessionMetadataSet,
    ToolResult,
    ToolUse,
    UserMessage,
)
from runwire.projections.runs.projection import RunsProjection
from runwire.projections.runtime.pg import Pool, open_pool
from runwire.projections.runtime.protocol import TopicPartition
from runwire.projections.sessions.projection import SessionsProjection
from runwire.settings import Settings
from tests.projection_contract import Harness, ProjectionContract


@pytest_asyncio.fixture(loop_scope="session")
async def pool(settings: Settings) -> AsyncIterator[Pool]:
    pool = await open_pool(settings)
    try:
        yield pool
    finally:
        await pool.close()


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

        async def state() -> Any:
            return await rows(pool, "SELECT * FROM run_status ORDER BY run_id")

        return Harness(
            projection=projection,
            tp=TopicPartition(settings.run_events, 3),
            good=[
                run_event(RunStarted(agent_id="a")),
                run_event(UserMessage(parts=["hi"])),
                run_event(ToolUse(id="t1", name="lookup")),
                run_event(ToolResult(tool_use_id="t1", content=1, is_error=True)),
                run_event(RunCompleted()),
            ],
            bad=run_event(ToolResult(tool_use_id="t-unknown")),
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

        async def state() -> Any:
            return (
                await rows(pool, "SELECT * FROM session_index ORDER BY session_id"),
                await rows(pool, "SELECT * FROM session_tombstones ORDER BY session_id"),
            )

        return Harness(
            projection=projection,
            tp=TopicPartition(settings.session_events, 1),
            good=[
                session_event(SessionCreated(user_id="u1", metadata={"a": 1})),
                session_event(SessionMetadataSet(key="b", value=[1, 2])),
                session_event(SessionEnded()),
            ],
            # A run event on the session topic is in the wrong place.
            bad=Event.create(RunStarted(), run_id="r1", session_id="s1"),
            key=lambda e: (e.session_id or "").encode(),
            state=state,
        )
