"""Migrations and copies (generations) of the Postgres projections, on the real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from runwire.contract.events import Event, RunStarted, SessionDeleted
from runwire.errors import ConfigurationError
from runwire.log import Publisher
from runwire.projections.migrations.runner import load_migrations
from runwire.projections.runs.projection import RunsProjection
from runwire.projections.runtime.pg import Pool, open_pool
from runwire.projections.runtime.protocol import ProjectionError
from runwire.projections.sessions.projection import SessionsProjection
from runwire.settings import Settings
from tests.integration.projection_support import caught_up, running, table


@pytest_asyncio.fixture(loop_scope="session")
async def pool(settings: Settings) -> AsyncIterator[Pool]:
    pool = await open_pool(settings, max_size=8)
    try:
        yield pool
    finally:
        await pool.close()


async def tables_like(pool: Pool, pattern: str) -> set[str]:
    rows = await table(
        pool,
        "SELECT table_name AS t FROM information_schema.tables "
        f"WHERE table_schema = current_schema() AND table_name LIKE '{pattern}'",
    )
    return {r["t"] for r in rows}


async def test_migrations_apply_once_even_when_run_concurrently(
    settings: Settings, pool: Pool
) -> None:
    starts = [RunsProjection(pool, settings).prepare() for _ in range(3)]
    starts += [SessionsProjection(pool, settings).prepare() for _ in range(3)]
    assert await asyncio.gather(*starts) == [1] * 6
    assert await RunsProjection(pool, settings).prepare() == 1
    versions = await table(
        pool, "SELECT scope, version FROM runwire_schema_migrations ORDER BY scope, version"
    )
    # Every migration of each set, once (counted from the sets, so a new one needs no edit).
    assert [(v["scope"], v["version"]) for v in versions] == [
        *(("runs@g1", m.version) for m in load_migrations(RunsProjection.tables.package)),
        *(
            ("runtime", m.version)
            for m in load_migrations("runwire.projections.migrations.runtime")
        ),
        *(("sessions@g1", m.version) for m in load_migrations(SessionsProjection.tables.package)),
    ]
    assert await tables_like(pool, "%\\_\\_g1") == {
        "run_status__g1",
        "run_status_applied__g1",
        "run_status_deleted_sessions__g1",
        "run_status_erased_runs__g1",
        "session_index__g1",
        "session_tombstones__g1",
        "session_index_applied__g1",
    }


async def test_a_migration_edited_after_it_was_applied_is_refused(
    settings: Settings, pool: Pool
) -> None:
    runs = RunsProjection(pool, settings)
    await runs.prepare()
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE runwire_schema_migrations SET checksum = 'edited' WHERE scope = 'runs@g1'"
        )
    with pytest.raises(ConfigurationError, match=r"0001_run_status\.sql of runs@g1 changed"):
        await runs.prepare()


async def test_rebuild_copies_resume_restart_and_discard(settings: Settings, pool: Pool) -> None:
    runs = RunsProjection(pool, settings)
    await runs.prepare()
    first = await runs.begin_rebuild()
    assert first.generation == 2
    assert (await runs.begin_rebuild()).generation == 2  # resumed
    again = await runs.begin_rebuild(restart=True)
    assert again.generation == 3
    assert await tables_like(pool, "run\\_status%\\_\\_g2") == set()
    assert await tables_like(pool, "run\\_status%\\_\\_g3") == {
        "run_status__g3",
        "run_status_applied__g3",
        "run_status_deleted_sessions__g3",
        "run_status_erased_runs__g3",
    }
    with pytest.raises(ProjectionError, match="abandoned"):
        await first.try_switch()
    # An empty log: the copy is as far as the live one, so it can go live.
    assert await again.try_switch()
    generations = await runs.generations()
    assert (generations.live, generations.building) == (3, None)
    assert await tables_like(pool, "run\\_status%\\_\\_g1") == set()
    assert await table(pool, "SELECT * FROM run_status") == []
    doomed = await runs.begin_rebuild()
    await doomed.discard()
    await doomed.discard()
    assert (await runs.generations()).building is None
    assert await tables_like(pool, "run\\_status%\\_\\_g4") == set()


async def test_upgrading_the_runs_projection_erases_sessions_deleted_before(
    settings: Settings, pool: Pool
) -> None:
    """A deployment from before migration 0002: its live copy holds the runs of a session
    deleted back then, and no position on the session-events topic. The upgraded projector
    migrates the live copy, reads that topic from offset 0 and erases them."""
    doomed = [
        Event.create(RunStarted(agent_id="a"), run_id=f"old-{n}", session_id="s-gone")
        for n in range(3)
    ]
    events = [
        *doomed,
        Event.create(RunStarted(agent_id="a"), run_id="old-kept", session_id="s-kept"),
        Event.create(SessionDeleted(), session_id="s-gone"),
    ]
    async with Publisher(settings) as publisher:
        await publisher.publish_many(events)
    before = RunsProjection(pool, settings)
    before._topics = (settings.run_events,)  # what the projection read before erasure
    await before.prepare()
    async with running(before, settings):
        await caught_up(before, settings)
    async with pool.connection() as conn:
        await conn.execute("DROP TABLE run_status_deleted_sessions__g1, run_status_erased_runs__g1")
        await conn.execute(
            "DELETE FROM runwire_schema_migrations WHERE scope = 'runs@g1' AND version IN (2, 7)"
        )
    listed = await table(pool, "SELECT run_id FROM run_status ORDER BY run_id")
    assert [r["run_id"] for r in listed] == ["old-0", "old-1", "old-2", "old-kept"]
    upgraded = RunsProjection(pool, settings)
    assert await upgraded.prepare() == 1
    async with running(upgraded, settings):
        await caught_up(upgraded, settings)
    listed = await table(pool, "SELECT run_id FROM run_status ORDER BY run_id")
    assert [r["run_id"] for r in listed] == ["old-kept"]
    erased = await table(pool, "SELECT run_id FROM run_status_erased_runs__g1 ORDER BY run_id")
    assert [r["run_id"] for r in erased] == ["old-0", "old-1", "old-2"]
