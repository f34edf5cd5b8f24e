"""Faults of sealing on the real stack: a key store that is down, a tampered record."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runwire.contract.codec import codec_for
from runwire.contract.events import Event, SessionCreated
from runwire.contract.sealing import SealingPayload
from runwire.contract.sealing.postgres import PostgresKeyStore
from runwire.errors import NotFoundError
from runwire.log import Publisher, clients
from runwire.projections.runtime.dead_letters import REASON
from runwire.projections.sessions.reader import SessionIndex
from runwire.sessions.embedded import projectors_running
from runwire.settings import Settings
from tests.helpers import assert_eventually
from tests.integration.sealing.scan import in_the_log, records


@pytest.fixture
def sealed(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={
            "sealing": True,
            "sealing_key_file": tmp_path / "kek.json",
            "sealing_key_cache_seconds": 0.0,
        }
    )


@pytest.fixture
def reader_keys(sealed: Settings) -> Iterator[PostgresKeyStore]:
    """The key store the projectors of ``sealed`` read with (the process-wide codec's)."""
    payload = codec_for(sealed).payload
    assert isinstance(payload, SealingPayload)
    assert isinstance(payload.keys, PostgresKeyStore)
    yield payload.keys
    payload.keys.close()


def created(session_id: str) -> Event:
    return Event.create(SessionCreated(user_id="alice", metadata={"k": "v"}), session_id=session_id)


async def _indexed(settings: Settings, session_id: str) -> bool:
    async with await SessionIndex.connect(settings) as index:
        try:
            return (await index.get(session_id)).user_id == "alice"
        except NotFoundError:
            return False


@pytest.mark.timeout(120)
async def test_a_key_store_that_is_down_holds_the_consumer_back_and_loses_nothing(
    sealed: Settings, reader_keys: PostgresKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer has its own key store (another cache setting, another codec).
    writer = sealed.model_copy(update={"sealing_key_cache_seconds": 5.0})
    session_id = f"s-{uuid.uuid4().hex[:8]}"
    async with Publisher(writer) as publisher:
        await publisher.publish(created(session_id))
    reachable = reader_keys._dsn
    monkeypatch.setattr(reader_keys, "_dsn", "postgresql://nobody@127.0.0.1:1/none")
    reader_keys.close()
    async with projectors_running(sealed):
        await asyncio.sleep(4)  # several retries' worth
        async with await SessionIndex.connect(sealed) as index:
            with pytest.raises(NotFoundError):
                await index.get(session_id)
        dead = [
            at
            for at in await in_the_log(sealed, session_id.encode())
            if at.startswith(sealed.dead_letters)
        ]
        assert dead == [], "nothing dead-lettered while the key store is down"
        monkeypatch.setattr(reader_keys, "_dsn", reachable)
        await assert_eventually(lambda: _indexed(sealed, session_id), timeout=30)


@pytest.mark.timeout(120)
async def test_a_tampered_sealed_record_is_dead_lettered_and_the_consumer_goes_on(
    sealed: Settings,
) -> None:
    bad, good = f"s-{uuid.uuid4().hex[:8]}", f"s-{uuid.uuid4().hex[:8]}"
    codec = codec_for(sealed)
    value = bytearray(codec.encode(created(bad)))
    value[-5] ^= 0xFF  # inside the tag
    producer = clients.producer(sealed, "tamper")  # the contract partitioner
    await producer.start()
    try:
        await producer.send_and_wait(
            sealed.topic_for("session_events"), bytes(value), key=bad.encode()
        )
    finally:
        await producer.stop()
    async with Publisher(sealed) as publisher:
        await publisher.publish(created(good))
    async with projectors_running(sealed):
        await assert_eventually(lambda: _indexed(sealed, good), timeout=30)
        reasons = [
            dict(r.headers).get(REASON)
            for r in await records(sealed, sealed.dead_letters)
            if r.key == bad.encode()
        ]
        # Once by each projector of the session topic (runs, sessions, memory).
        assert len(reasons) >= 1
        assert set(reasons) == {b"unreadable_payload"}
