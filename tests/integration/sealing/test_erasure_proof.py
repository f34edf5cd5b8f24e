"""The proof of erasure: a secret is never in the clear on the log, and after its
session is erased it is nowhere at all (every topic partition, table, Redis key)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from runwire.contract.events import Event, SessionDeleted, UserMessage
from runwire.contract.sealing import SessionErasedError
from runwire.errors import NotFoundError
from runwire.log import Publisher
from runwire.projections.memory.service import rebuild_memory
from runwire.projections.runtime.protocol import Projection, Rebuildable
from runwire.projections.runtime.rebuild import rebuild
from runwire.sessions import AsyncSession
from runwire.sessions.admin import RECEIPT_KEYS_LABEL, RECEIPT_LABEL, erase_any
from runwire.sessions.log_backend import LogBackend
from runwire.settings import Settings
from tests.helpers import assert_eventually
from tests.integration.sealing.scan import events_of, in_postgres, in_redis, in_the_log, nowhere
from tests.integration.sealing.writing import secret_session


@pytest_asyncio.fixture(loop_scope="session")
async def backend(sealed: Settings, projectors: dict[str, Projection]) -> AsyncIterator[LogBackend]:
    async with LogBackend(sealed) as backend:
        yield backend


@pytest.mark.timeout(180)
async def test_an_erased_secret_is_in_no_byte_of_the_deployment(
    sealed: Settings, backend: LogBackend, projectors: dict[str, Projection]
) -> None:
    secret = f"zebra-{uuid.uuid4().hex}"
    needle = secret.encode()
    kept_secret = f"okapi-{uuid.uuid4().hex}"
    session_id = await secret_session(backend, secret)
    kept_id = await secret_session(backend, kept_secret)

    # Before erasure: only the projections hold it; the log never had it in the clear.
    assert await in_the_log(sealed, needle) == []
    where = await in_postgres(sealed, needle) + await in_redis(sealed, needle)
    assert where, "the projections serve the session, so they hold the secret"

    async with AsyncSession(session_id, user_id="alice", backend=backend) as s:
        await s.delete(erase=True)

    await assert_eventually(lambda: nowhere(sealed, needle), timeout=30)
    # Rebuilt from offset zero, no projection brings it back nor dead-letters it.
    for name in ("runs", "sessions", "transcripts"):
        projection = projectors[name]
        assert isinstance(projection, Rebuildable)
        await rebuild(projection, sealed)
    await rebuild_memory(sealed)
    assert await nowhere(sealed, needle)
    assert await in_the_log(sealed, session_id.encode() + b"/") != []  # sealed records stay
    dead = [
        at
        for at in await in_the_log(sealed, session_id.encode())
        if at.startswith(sealed.dead_letters)
    ]
    assert dead == [], "an erased session's records are skipped, never dead-lettered"

    # The other session is whole, and still only in the projections.
    async with AsyncSession(kept_id, user_id="alice", backend=backend) as s:
        assert any(kept_secret in m.text() for m in await s.get_messages())
    assert await in_the_log(sealed, kept_secret.encode()) == []


async def test_erasure_is_idempotent_leaves_a_receipt_and_forbids_writes(
    sealed: Settings, backend: LogBackend
) -> None:
    session_id = await secret_session(backend, "idempotent")
    first = await erase_any(backend, session_id)
    assert first.key_ids
    assert all(k.startswith(f"{session_id}/") for k in first.key_ids)
    again = await erase_any(backend, session_id)
    assert again.key_ids == ()
    with pytest.raises(NotFoundError):
        await AsyncSession(session_id, user_id="alice", backend=backend).open()
    # Writing to it below the Session API too is refused with a clear error.
    async with Publisher(sealed) as publisher:
        with pytest.raises(SessionErasedError, match="cannot be written to again"):
            await publisher.publish(
                Event.create(UserMessage(parts=["back?"]), run_id="r-x", session_id=session_id)
            )
    # The receipts are events on the session topic, readable after the keys are gone.
    receipts = [
        e
        for e in await events_of(sealed, sealed.topic_for("session_events"))
        if e.session_id == session_id and e.labels.get(RECEIPT_LABEL) == "keys-destroyed"
    ]
    assert [r.labels[RECEIPT_KEYS_LABEL] for r in receipts] == [",".join(first.key_ids), ""]
    assert all(isinstance(r.payload, SessionDeleted) for r in receipts)
