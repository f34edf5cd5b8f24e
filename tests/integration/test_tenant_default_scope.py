"""A reader that names no tenant reads the rows without a tenant; every tenant's rows
only when it asks to be the admin.

A tenant process writes a session (tenant B) and a process without a tenant
writes another; a reader of a process without a tenant then sees only the
latter, by every path (its readers, SQL with a wrong WHERE, the CLI), and the
admin (``admin=True``, ``tenant=ADMIN``, ``RUNWIRE_ADMIN``, ``--admin``) sees both.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from typer.testing import CliRunner

from runwire.cli.main import app
from runwire.errors import InputError, NotFoundError
from runwire.projections.runs.reader import RunStore
from runwire.projections.runtime.pg import Pool
from runwire.projections.runtime.tenancy import (
    ADMIN,
    NO_TENANT,
    NO_TENANT_SETTING,
    TENANT_READER_ROLE,
    scoped,
)
from runwire.projections.sessions.reader import SessionIndex
from runwire.services.process import settings_env
from runwire.sessions import AsyncSession
from runwire.sessions.admin import export_any
from runwire.sessions.embedded import projectors_running
from runwire.sessions.log_backend import LogBackend
from runwire.settings import Settings

B = "tenant-b"


@dataclass
class Written:
    session_id: str
    run_ids: list[str]


async def _write(settings: Settings, tenant: str | None) -> Written:
    mine = settings.model_copy(update={"tenant": tenant})
    async with (
        LogBackend(mine) as backend,
        AsyncSession(user_id="same-user", backend=backend) as s,
    ):
        await s.add_message("user", f"hello from {tenant or 'nobody'}")
        await s.add_message("assistant", "hi")
        session_id = s.session_id
    async with await RunStore.connect(settings, tenant=ADMIN) as runs:
        page = await runs.list(session_id=session_id)
    return Written(session_id, [r.run_id for r in page.items])


@pytest_asyncio.fixture(loop_scope="session")
async def written(settings: Settings) -> AsyncIterator[dict[str | None, Written]]:
    async with projectors_running(settings):
        yield {B: await _write(settings, B), None: await _write(settings, None)}


async def test_a_reader_without_a_tenant_reads_only_the_rows_without_one(
    settings: Settings, pool: Pool, written: dict[str | None, Written]
) -> None:
    theirs, mine = written[B], written[None]
    assert theirs.run_ids
    assert mine.run_ids

    runs, index = RunStore(pool, settings), SessionIndex(pool, settings)
    assert runs.tenant is NO_TENANT
    assert index.tenant is NO_TENANT
    assert {r.run_id for r in (await runs.list()).items} == set(mine.run_ids)
    assert {r.tenant for r in (await runs.list()).items} == {None}
    assert [s.session_id for s in (await index.list()).items] == [mine.session_id]
    for run_id in theirs.run_ids:
        with pytest.raises(NotFoundError):
            await runs.get(run_id)
    with pytest.raises(NotFoundError):
        await index.get(theirs.session_id)
    # The Session API of a process without a tenant reads its own session.
    async with (
        LogBackend(settings) as backend,
        AsyncSession(mine.session_id, user_id="same-user", backend=backend) as s,
    ):
        assert [m.role for m in await s.get_messages()] == ["user", "assistant"]

    # The admin, asked for in any of its ways, sees both tenants' rows.
    everyone = set(mine.run_ids) | set(theirs.run_ids)
    admin_settings = settings.model_copy(update={"admin": True})
    for admin in (
        RunStore(pool, settings, admin=True),
        RunStore(pool, settings, tenant=ADMIN),
        RunStore(pool, admin_settings),
        runs.for_tenant(ADMIN),
    ):
        assert admin.tenant is ADMIN
        assert everyone <= {r.run_id for r in (await admin.list(limit=500)).items}
    async with await SessionIndex.connect(settings, admin=True) as admin_index:
        assert (await admin_index.get(theirs.session_id)).tenant == B


async def test_sql_of_the_no_tenant_scope_sees_only_rows_without_a_tenant(
    pool: Pool, written: dict[str | None, Written]
) -> None:
    async with scoped(pool, NO_TENANT) as conn:
        for view in ("run_status", "session_index"):
            cur = await conn.execute(
                f"SELECT DISTINCT tenant FROM {view} WHERE tenant = %s OR true".encode(), (B,)
            )
            assert {row[0] for row in await cur.fetchall()} == {None}, view
    # The setting ends with the transaction: the role alone sees nothing again.
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL ROLE {TENANT_READER_ROLE}".encode())
        cur = await conn.execute("SELECT current_setting(%s, true)", (NO_TENANT_SETTING,))
        assert (await cur.fetchone()) in {(None,), ("",)}
        for view in ("run_status", "session_index"):
            cur = await conn.execute(f"SELECT count(*) FROM {view}".encode())
            assert (await cur.fetchone()) == (0,), view


async def test_the_admin_is_refused_to_a_tenant(settings: Settings, pool: Pool) -> None:
    with pytest.raises(InputError, match="tenant: a tenant process"):
        RunStore(pool, settings.model_copy(update={"tenant": B, "admin": True}))
    with pytest.raises(InputError, match="tenant: admin=True reads every tenant"):
        RunStore(pool, settings, tenant=B, admin=True)


async def test_the_cli_reads_every_tenant_only_with_admin(
    settings: Settings, written: dict[str | None, Written]
) -> None:
    runner = CliRunner(env=settings_env(settings))

    async def listed(*more: str) -> set[str]:
        result = await asyncio.to_thread(
            runner.invoke, app, ["runs", "list", "--json", "--limit", "500", *more]
        )
        assert result.exit_code == 0, result.output
        return {r["run_id"] for r in json.loads(result.output)["runs"]}

    assert await listed() == set(written[None].run_ids)
    assert await listed("--admin") >= set(written[None].run_ids) | set(written[B].run_ids)
    tenant_env = {**settings_env(settings), "RUNWIRE_TENANT": B}
    refused = await asyncio.to_thread(
        CliRunner(env=tenant_env).invoke, app, ["runs", "list", "--admin"]
    )
    assert refused.exit_code == 1
    assert "cannot read every tenant" in refused.output


async def test_an_admin_process_reads_a_tenants_session_from_its_cache_keys(
    settings: Settings, written: dict[str | None, Written]
) -> None:
    theirs = written[B]
    # Without the admin, a process without a tenant does not know B's session.
    async with LogBackend(settings) as backend:
        with pytest.raises(NotFoundError):
            await export_any(backend, theirs.session_id)
    # The operator's export reads it from B's keys of the transcript cache.
    async with LogBackend(settings.model_copy(update={"admin": True})) as backend:
        doc = await export_any(backend, theirs.session_id)
        texts = json.dumps(doc)
        assert f"hello from {B}" in texts
        assert "hello from nobody" not in texts
        assert backend.cache.tenant is None  # its own keys stay those without a tenant
