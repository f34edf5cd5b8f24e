"""``runwire projections migrate``: docker-compose's one-shot job prepares every store."""

from __future__ import annotations

import asyncio

from typer.testing import CliRunner

from runwire.cli.main import app
from runwire.projections.catalog import CATALOG
from runwire.projections.runtime.pg import open_pool
from runwire.settings import Settings
from tests.integration.test_projection_reads import env_of


async def _relations(settings: Settings) -> set[str]:
    pool = await open_pool(settings)
    try:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            )
            return {str(row[0]) for row in await cur.fetchall()}
    finally:
        await pool.close()


def test_migrate_prepares_every_projection_once_and_is_idempotent(settings: Settings) -> None:
    assert asyncio.run(_relations(settings)) == set()
    runner = CliRunner()
    first = runner.invoke(app, ["projections", "migrate"], env=env_of(settings))
    assert first.exit_code == 0, first.output
    # One line per projection of the catalog, so a new projection is migrated too.
    assert [line.split(":")[0] for line in first.stdout.splitlines()] == sorted(CATALOG)
    relations = asyncio.run(_relations(settings))
    # The views readers (the API) query, and each copy's tables.
    assert {"run_status", "session_index", "memory_entries"} <= relations
    assert "run_status__g1" in relations
    again = runner.invoke(app, ["projections", "migrate"], env=env_of(settings))
    assert again.exit_code == 0, again.output
    assert again.stdout == first.stdout
    assert asyncio.run(_relations(settings)) == relations


def test_migrate_names_an_unknown_projection(settings: Settings) -> None:
    result = CliRunner().invoke(app, ["projections", "migrate", "nope"], env=env_of(settings))
    assert result.exit_code == 1
    assert "no projection named 'nope'" in result.output
