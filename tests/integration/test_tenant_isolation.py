"""Tenants kept apart by the stores: a reader of tenant A never sees tenant B's rows.

Two tenant processes (``RUNWIRE_TENANT``) write sessions, runs, memory and
checkpoints; then tenant A tries every Postgres read path for B's ids (the
readers, the Session API, the checkpointer, and SQL with a wrong WHERE under
row-level security) and sees nothing, while the admin reader sees both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest
import pytest_asyncio
from langgraph.checkpoint.conformance.test_utils import (
    generate_checkpoint,
    generate_config,
    generate_metadata,
)
from pydantic import SecretStr

from runwire.checkpoint import RunwireSaver
from runwire.errors import InputError, NotFoundError
from runwire.memory import AsyncMemory
from runwire.projections.checkpoints.reader import Checkpoints
from runwire.projections.memory.reader import MemoryEntries
from runwire.projections.runs.reader import RunStore
from runwire.projections.runtime.pg import Pool
from runwire.projections.runtime.tenancy import ADMIN, TENANT_READER_ROLE, scoped
from runwire.projections.sessions.reader import SessionIndex
from runwire.services.api.app import create_app
from runwire.services.api.server import ApiServer
from runwire.sessions import AsyncSession
from runwire.sessions.embedded import projectors_running
from runwire.sessions.log_backend import LogBackend
from runwire.settings import Settings

A, B = "tenant-a", "tenant-b"

# What readers see (views) and the copies behind them: every one is guarded.
GUARDED = (
    "run_status",
    "session_index",
    "session_tombstones",
    "memory_entries",
    "checkpoint_index",
    "checkpoint_values",
    "checkpoint_pending_writes",
)


@dataclass
class Written:
    """What one tenant wrote."""

    session_id: str
    deleted_session_id: str
    run_ids: list[str]
    thread_id: str


async def _write(settings: Settings, tenant: str) -> Written:
    mine = settings.model_copy(update={"tenant": tenant})
    async with LogBackend(mine) as backend:
        # The caller takes the process's tenant when it names none.
        async with AsyncSession(user_id="same-user", backend=backend) as s:
            assert s.tenant == tenant
            await s.add_message("user", f"hello from {tenant}")
            await s.add_message("assistant", f"hi {tenant}")
            await s.store_memory("pin", f"pinned by {tenant}")
            session_id = s.session_id
        async with AsyncSession(user_id="same-user", tenant=tenant, backend=backend) as gone:
            await gone.add_message("user", "soon deleted")
            await gone.delete()
            deleted = gone.session_id
    thread = f"thread-{tenant}"
    async with RunwireSaver(settings=mine) as saver:
        config = generate_config(thread)
        await saver.aput(config, generate_checkpoint(), generate_metadata(), {"a": 1})
        assert await saver.aget_tuple(config) is not None  # its own tenant reads it back
    async with await RunStore.connect(settings, tenant=ADMIN) as runs:
        page = await runs.list(session_id=session_id)
    return Written(session_id, deleted, [r.run_id for r in page.items], thread)


@pytest_asyncio.fixture(loop_scope="session")
async def written(settings: Settings) -> AsyncIterator[dict[str, Written]]:
    async with projectors_running(settings):
        yield {A: await _write(settings, A), B: await _write(settings, B)}


@pytest.mark.timeout(180)
async def test_the_readers_of_tenant_a_never_see_tenant_b(
    settings: Settings, pool: Pool, written: dict[str, Written]
) -> None:
    mine, theirs = written[A], written[B]
    assert mine.run_ids
    assert theirs.run_ids

    runs = RunStore(pool, settings, tenant=A)
    assert {r.tenant for r in (await runs.list()).items} == {A}
    assert {r.run_id for r in (await runs.list()).items} == set(mine.run_ids)
    for run_id in theirs.run_ids:
        with pytest.raises(NotFoundError):
            await runs.get(run_id)
    assert (await runs.list(session_id=theirs.session_id)).items == []

    sessions = SessionIndex(pool, settings, tenant=A)
    assert [s.session_id for s in (await sessions.list(user_id="same-user")).items] == [
        mine.session_id
    ]
    with pytest.raises(NotFoundError):
        await sessions.get(theirs.session_id)
    assert await sessions.is_deleted(mine.deleted_session_id)
    assert not await sessions.is_deleted(theirs.deleted_session_id)

    memory = MemoryEntries(pool, settings, tenant=A)
    assert await memory.get("session", mine.session_id, "pin") is not None
    assert await memory.get("session", theirs.session_id, "pin") is None
    assert await memory.list("session", theirs.session_id) == []

    checkpoints = Checkpoints(pool, settings, tenant=A)
    assert {c.thread_id for c in await checkpoints.find()} == {mine.thread_id}
    assert await checkpoints.get(theirs.thread_id, "", None) is None
    assert await checkpoints.thread_values(theirs.thread_id) == []

    # The admin reader (no tenant) sees both; for_tenant turns it into B's.
    admin = RunStore(pool, settings, tenant=ADMIN)
    assert {r.tenant for r in (await admin.list()).items} == {A, B}
    assert {r.tenant for r in (await admin.for_tenant(B).list()).items} == {B}


@pytest.mark.timeout(180)
async def test_the_apis_of_a_tenant_process_never_see_another_tenant(
    settings: Settings, written: dict[str, Written]
) -> None:
    theirs = written[B]
    mine = settings.model_copy(update={"tenant": A})
    # The process's readers take its tenant: no tenant= needed anywhere.
    async with await RunStore.connect(mine) as runs:
        assert runs.tenant == A
        with pytest.raises(NotFoundError):
            await runs.get(theirs.run_ids[0])
    async with LogBackend(mine) as backend:
        # The Session API with B's session id, even claiming B's user: no such session.
        with pytest.raises(NotFoundError):
            async with AsyncSession(
                theirs.session_id, user_id="same-user", tenant=A, backend=backend
            ):
                pass
        # A caller naming another tenant than the process's is refused before any write.
        with pytest.raises(InputError, match="tenant: 'tenant-b', but this process writes as"):
            async with AsyncSession(user_id="same-user", tenant=B, backend=backend):
                pass
        # Memory of B's session, asked for by owner: not there.
        async with AsyncMemory(user_id="same-user", tenant=A, backend=backend) as memory:
            assert await memory.get_memory("pin", "session", theirs.session_id) is None
    async with RunwireSaver(settings=mine) as saver:
        assert await saver.aget_tuple(generate_config(theirs.thread_id)) is None
        assert [c async for c in saver.alist(None)] != []
        assert {c.config["configurable"]["thread_id"] async for c in saver.alist(None)} == {
            written[A].thread_id
        }


KEY_A, KEY_B, KEY_NONE = "tenant-a-key-5c1e9f0b", "tenant-b-key-8d2a6c4e", "no-tenant-key-3b7f1a9d"


@pytest.mark.timeout(180)
async def test_the_http_api_keys_of_tenant_a_never_reach_tenant_b(
    settings: Settings, written: dict[str, Written]
) -> None:
    mine, theirs = written[A], written[B]
    keys = f"{KEY_A}:same-user:write:{A}, {KEY_B}:same-user:read:{B}, {KEY_NONE}:same-user"
    app = create_app(settings.model_copy(update={"api_keys": SecretStr(keys)}))
    async with (
        ApiServer(app, port=0, grace=1.0) as server,
        httpx.AsyncClient(base_url=server.url, timeout=30.0) as http,
    ):

        async def get(key: str, path: str) -> httpx.Response:
            return await http.get(path, headers={"Authorization": f"Bearer {key}"})

        assert (await get(KEY_A, "/v1/me")).json()["tenant"] == A
        # A tenant key's requests read the stores as its tenant (row-level security).
        assert app.state.backends.tenants[A].runs.tenant == A
        assert app.state.backends.tenants[A].sessions.tenant == A
        listed = (await get(KEY_A, "/v1/sessions")).json()["items"]
        assert [s["session_id"] for s in listed] == [mine.session_id]
        assert (await get(KEY_A, f"/v1/sessions/{mine.session_id}")).status_code == 200
        assert (await get(KEY_A, f"/v1/runs/{mine.run_ids[0]}")).status_code == 200
        for path in (
            f"/v1/sessions/{theirs.session_id}",
            f"/v1/sessions/{theirs.session_id}/runs",
            f"/v1/runs/{theirs.run_ids[0]}",
            f"/v1/runs/{theirs.run_ids[0]}/transcript",
            f"/v1/runs/{theirs.run_ids[0]}/events",
        ):
            answer = await get(KEY_A, path)
            assert answer.status_code == 404, (path, answer.text)
        cancel = await http.post(
            f"/v1/runs/{theirs.run_ids[0]}/cancel", headers={"Authorization": f"Bearer {KEY_A}"}
        )
        assert cancel.status_code == 404, cancel.text
        # B's key sees B's; a key of the same user without a tenant sees neither.
        assert (await get(KEY_B, f"/v1/runs/{theirs.run_ids[0]}")).status_code == 200
        assert (await get(KEY_NONE, "/v1/sessions")).json()["items"] == []
        assert (await get(KEY_NONE, f"/v1/runs/{mine.run_ids[0]}")).status_code == 404

        # What a tenant key writes is the tenant's.
        started = await http.post(
            "/v1/runs", json={"prompt": "hi"}, headers={"Authorization": f"Bearer {KEY_A}"}
        )
        assert started.status_code in (200, 201, 202), started.text
    async with await RunStore.connect(settings, tenant=ADMIN) as runs:
        assert (await runs.get(started.json()["run_id"])).tenant == A


async def test_sql_with_a_wrong_where_sees_only_the_tenants_rows(
    pool: Pool, written: dict[str, Written]
) -> None:
    async with scoped(pool, A) as conn:
        for view in GUARDED:
            cur = await conn.execute(
                f"SELECT DISTINCT tenant FROM {view} WHERE tenant = %s OR true".encode(), (B,)
            )
            assert {row[0] for row in await cur.fetchall()} <= {A}, view
        # This test's schema only: other tests' copies may come and go meanwhile.
        cur = await conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        copies = [
            name
            for (name,) in await cur.fetchall()
            if any(name.startswith(f"{view}__") for view in GUARDED)
        ]
        assert copies, "the copies behind the views are granted to the tenant reader"
        for copy in copies:
            cur = await conn.execute(f"SELECT DISTINCT tenant FROM {copy}".encode())
            assert {row[0] for row in await cur.fetchall()} <= {A}, copy
        cur = await conn.execute("SELECT count(*) FROM run_status")
        assert (await cur.fetchone()) == (len(written[A].run_ids),)

    # What only the projectors read is not granted at all.
    for internal in ("runwire_projection_positions", "runwire_schema_migrations"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            async with scoped(pool, A) as conn:
                await conn.execute(f"SELECT 1 FROM {internal}".encode())

    # The role without a tenant set sees no row at all.
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL ROLE {TENANT_READER_ROLE}".encode())
        for view in GUARDED:
            cur = await conn.execute(f"SELECT count(*) FROM {view}".encode())
            assert (await cur.fetchone()) == (0,), view

    # The role and the tenant end with the transaction: the pooled connection is clean.
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT current_user = session_user, current_setting('runwire.tenant', true)"
        )
        assert (await cur.fetchone()) in {(True, None), (True, "")}


async def test_a_bad_tenant_is_refused_naming_it(settings: Settings, pool: Pool) -> None:
    with pytest.raises(InputError, match="tenant: empty"):
        RunStore(pool, settings, tenant="")
    with pytest.raises(InputError, match="tenant: holds the control character"):
        RunStore(pool, settings).for_tenant("a\nb")
    store = RunStore(pool, settings, tenant=A)
    await store.prepare()
    with pytest.raises(NotFoundError):  # a tenant with no rows reads, and finds nothing
        await store.get("nothing")
