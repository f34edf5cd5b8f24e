"""The proof of erasure by user: two sessions, a deleted one and user memory of a
user, each with a secret, are never in the clear on the log; after the user is
erased they are nowhere at all (every topic partition, table, Redis key), and
another user of the same tenant keeps everything."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from runwire.contract.codec import codec_for
from runwire.contract.events import Event, UserErased, UserMessage
from runwire.contract.sealing import ErasedError, SessionErasedError, UserErasedError
from runwire.errors import NotFoundError
from runwire.log import Publisher
from runwire.memory import AsyncMemory
from runwire.projections.memory.service import rebuild_memory
from runwire.projections.runtime.protocol import Projection, Rebuildable
from runwire.projections.runtime.rebuild import rebuild
from runwire.sessions import AsyncSession
from runwire.sessions.admin import erase_user
from runwire.sessions.log_backend import LogBackend
from runwire.settings import Settings
from tests.helpers import assert_eventually
from tests.integration.sealing.scan import (
    events_of,
    in_postgres,
    in_redis,
    in_the_log,
    nowhere,
    records,
)
from tests.integration.sealing.writing import secret_session

TENANT = "acme"


@pytest_asyncio.fixture(loop_scope="session")
async def backend(sealed: Settings, projectors: dict[str, Projection]) -> AsyncIterator[LogBackend]:
    async with LogBackend(sealed.model_copy(update={"tenant": TENANT})) as backend:
        yield backend


def _memory(backend: LogBackend, user: str) -> AsyncMemory:
    return AsyncMemory(user_id=user, tenant=TENANT, backend=backend)


async def _readable(sealed: Settings, session_id: str) -> list[bool]:
    """For each sealed run event of the session on the log: does it open?"""
    codec = codec_for(sealed)
    out = []
    for r in await records(sealed, sealed.topic_for("run_events")):
        if r.value is None or session_id.encode() + b"/" not in r.value:
            continue
        try:
            codec.decode(r.value)
            out.append(True)
        except ErasedError:
            out.append(False)
    return out


@pytest.mark.timeout(240)
async def test_an_erased_users_secrets_are_in_no_byte_of_the_deployment(
    sealed: Settings, backend: LogBackend, projectors: dict[str, Projection]
) -> None:
    tag = uuid.uuid4().hex
    first, second, deleted, remembered = (
        f"{name}-{tag}" for name in ("zebra", "koala", "tapir", "heron")
    )
    kept, kept_memory = f"okapi-{tag}", f"egret-{tag}"
    one = await secret_session(backend, first, user="alice", tenant=TENANT)
    two = await secret_session(backend, second, user="alice", tenant=TENANT)
    gone = await secret_session(backend, deleted, user="alice", tenant=TENANT)
    async with AsyncSession(gone, user_id="alice", tenant=TENANT, backend=backend) as s:
        await s.delete()  # deleted earlier, not erased: its key still opens its records
    async with _memory(backend, "alice") as memory:
        await memory.store_memory("diary", {"entry": remembered})
    bobs = await secret_session(backend, kept, user="bob", tenant=TENANT)
    async with _memory(backend, "bob") as memory:
        await memory.store_memory("diary", {"entry": kept_memory})

    # Before erasure: only the projections hold the secrets; the log never had them.
    mine = [s.encode() for s in (first, second, deleted, remembered)]
    for needle in [*mine, kept.encode(), kept_memory.encode()]:
        assert await in_the_log(sealed, needle) == [], needle
    for served in (first, second, remembered):
        where = await in_postgres(sealed, served.encode()) + await in_redis(sealed, served.encode())
        assert where, f"the projections serve {served}, so they hold it"
    assert all(await _readable(sealed, gone)), "a deleted session's key is alive until erased"

    receipt = await erase_user(backend, "alice", TENANT)
    assert set(receipt.session_ids) == {one, two, gone}
    assert bobs not in receipt.session_ids
    assert any(k.startswith(f"user:{TENANT}::alice/") for k in receipt.key_ids)
    for session_id in (one, two, gone):
        assert any(k.startswith(f"{session_id}/") for k in receipt.key_ids)
    assert receipt.memory_entries == 1

    await assert_eventually(lambda: nowhere(sealed, *mine), timeout=30)
    opened = await _readable(sealed, gone)
    assert opened
    assert not any(opened)
    # Rebuilt from offset zero, no projection brings them back nor dead-letters them.
    for name in ("runs", "sessions", "transcripts"):
        projection = projectors[name]
        assert isinstance(projection, Rebuildable)
        await rebuild(projection, sealed)
    await rebuild_memory(sealed)
    assert await nowhere(sealed, *mine)
    dead = [
        at
        for session_id in (one, two, gone, f"{TENANT}::alice")
        for at in await in_the_log(sealed, session_id.encode())
        if at.startswith(sealed.dead_letters)
    ]
    assert dead == [], "an erased user's records are skipped, never dead-lettered"

    # The receipt is an event on the log, readable with every key gone.
    receipts = [
        e.payload
        for e in await events_of(sealed, sealed.topic_for("memory"))
        if isinstance(e.payload, UserErased)
    ]
    assert [(r.owner, r.key_ids, r.session_ids) for r in receipts] == [
        (f"{TENANT}::alice", list(receipt.key_ids), list(receipt.session_ids))
    ]

    # The other user of the tenant is whole, and still only in the projections.
    async with AsyncSession(bobs, user_id="bob", tenant=TENANT, backend=backend) as s:
        assert any(kept in m.text() for m in await s.get_messages())
    async with _memory(backend, "bob") as memory:
        assert await memory.get_memory("diary") == {"entry": kept_memory}
    assert await in_the_log(sealed, kept.encode()) == []


async def test_erasing_a_user_twice_answers_the_same_and_forbids_writes(
    sealed: Settings, backend: LogBackend
) -> None:
    session_id = await secret_session(backend, "twice", user="carol", tenant=TENANT)
    async with _memory(backend, "carol") as memory:
        await memory.store_memory("k", "v")
    first = await erase_user(backend, "carol", TENANT)
    again = await erase_user(backend, "carol", TENANT)
    assert (again.key_ids, again.session_ids) == (first.key_ids, first.session_ids)
    assert first.session_ids == (session_id,)
    assert again.memory_entries == 0
    assert again.event_id != first.event_id  # each erasure leaves its receipt

    async with _memory(backend, "carol") as memory:
        assert await memory.get_memory("k") is None
        with pytest.raises(UserErasedError, match="carol"):
            await memory.store_memory("k", "back?")
    with pytest.raises(NotFoundError):
        await AsyncSession(session_id, user_id="carol", tenant=TENANT, backend=backend).open()
    with pytest.raises(UserErasedError, match="carol"):
        async with AsyncSession(user_id="carol", tenant=TENANT, backend=backend) as s:
            await s.add_message("user", "a new session")
    async with Publisher(sealed) as publisher:
        with pytest.raises(SessionErasedError, match="cannot be written to again"):
            await publisher.publish(
                Event.create(
                    UserMessage(parts=["back?"]),
                    run_id="r-x",
                    session_id=session_id,
                    user_id="carol",
                    tenant=TENANT,
                )
            )
