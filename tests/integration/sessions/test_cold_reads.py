"""A cold read - a backend that never read the session, holding nothing between
reads - gives what the writer sees, on the real stack: after a clear, in a fork,
after erasure, with another owner's run in the session, with tool parts whose
numbers only an exact decode keeps."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal

import pytest
import redis.asyncio as aioredis

from runwire.contract import ids
from runwire.contract.events import SessionCreated, now
from runwire.errors import NotFoundError
from runwire.log import publish_retrying
from runwire.memory.checks import Caller
from runwire.projections.transcripts.keys import Keyspace
from runwire.sessions import AsyncSession
from runwire.sessions.log_backend import LogBackend
from runwire.sessions.planning import check_run, from_millis, run_events, session_event
from runwire.settings import Settings
from runwire.transcript.messages import Message, TextPart, ToolResultPart, ToolUsePart
from tests.helpers import assert_eventually

pytestmark = pytest.mark.integration


def texts(messages: Sequence[Message]) -> list[str]:
    return [m.text() for m in messages]


@contextlib.asynccontextmanager
async def cold(settings: Settings, session_id: str, user_id: str) -> AsyncIterator[AsyncSession]:
    """The session opened on a new backend that keeps nothing decoded or held."""
    async with (
        LogBackend(settings, decoded_bytes=0) as backend,
        AsyncSession(session_id, user_id=user_id, backend=backend) as session,
    ):
        yield session


async def reads(session: AsyncSession, limits: Sequence[int | None]) -> list[list[str]]:
    """``get_messages(limit)`` for each limit, twice each (a cold backend reads afresh)."""
    out: list[list[str]] = []
    for limit in limits:
        first = texts(await session.get_messages(limit=limit))
        assert texts(await session.get_messages(limit=limit)) == first
        out.append(first)
    return out


LIMITS = (None, 1, 2, 20)


async def add_turns(session: AsyncSession, count: int, tag: str = "") -> None:
    for i in range(count):
        await session.add_messages([("user", f"{tag}q{i}"), ("assistant", f"{tag}a{i}")])


async def test_a_cold_read_after_a_clear_starts_from_it(
    log_backend: LogBackend, settings: Settings
) -> None:
    async with AsyncSession(user_id="alice", backend=log_backend) as s:
        await add_turns(s, 3, "old ")
        await s.clear()
        async with cold(settings, s.session_id, "alice") as c:
            assert await reads(c, LIMITS) == [[], [], [], []]
        await add_turns(s, 3)
        await log_backend.settle(s.session_id)
        want = await reads(s, LIMITS)
        assert want[0] == ["q0", "a0", "q1", "a1", "q2", "a2"]
        async with cold(settings, s.session_id, "alice") as c:
            assert await reads(c, LIMITS) == want


async def test_a_cold_read_of_a_fork_has_the_shared_prefix(
    log_backend: LogBackend, settings: Settings
) -> None:
    async with AsyncSession(user_id="alice", backend=log_backend) as parent:
        await add_turns(parent, 4)
        child = await parent.fork(turn=2)
        await child.add_messages([("user", "q in fork"), ("assistant", "a in fork")])
        await log_backend.settle(child.session_id)
        want = await reads(child, LIMITS)
        assert want[0] == ["q0", "a0", "q1", "a1", "q in fork", "a in fork"]
        assert want[1] == ["q in fork", "a in fork"]
        async with LogBackend(settings, decoded_bytes=0) as backend:
            for _ in range(2):  # then re-opened on a backend that described it
                async with AsyncSession(child.session_id, user_id="alice", backend=backend) as c:
                    assert c.parent_session_id == parent.session_id
                    assert await reads(c, LIMITS) == want
        async with cold(settings, parent.session_id, "alice") as c:
            assert texts(await c.get_messages(limit=1)) == ["q3", "a3"]
        await child.close()


async def test_a_cold_reader_of_an_erased_session_finds_nothing(
    log_backend: LogBackend, settings: Settings
) -> None:
    async with AsyncSession(user_id="alice", backend=log_backend) as s:
        await add_turns(s, 3)
        await log_backend.settle(s.session_id)
        session_id = s.session_id
        async with (
            LogBackend(settings, decoded_bytes=0) as backend,
            AsyncSession(session_id, user_id="alice", backend=backend) as opened,
        ):
            assert texts(await opened.get_messages(limit=1)) == ["q2", "a2"]
            await s.delete()  # erases the projections (the cache entries with them)
            # Opened before the erasure, read after it: gone, at any limit.
            with pytest.raises(NotFoundError):
                await opened.get_messages(limit=20)
        async with LogBackend(settings, decoded_bytes=0) as backend:
            with pytest.raises(NotFoundError):
                await AsyncSession(session_id, user_id="alice", backend=backend).open()


async def test_a_cold_read_leaves_out_another_owners_run_in_the_session(
    log_backend: LogBackend, settings: Settings
) -> None:
    async with AsyncSession(user_id="alice", backend=log_backend) as s:
        await add_turns(s, 3)
        tail = await log_backend.tail(s.session_id)
        assert tail is not None
        # Mallory writes a run straight to the log, naming alice's session.
        run_id = ids.new_event_id()
        injected = [Message(role="user", parts=(TextPart(text="injected"),))]
        events = run_events(
            run_id,
            s.session_id,
            Caller(user_id="mallory"),
            check_run(run_id, [], injected, ["-"], token="t"),
            token="t",
            at=max(now(), from_millis(tail.first_ms + 2)),
            source="session",
        )
        last = (await publish_retrying(log_backend.publisher, events))[-1]
        await log_backend.cache.wait_for(last, 30)
        await s.add_messages([("user", "q3"), ("assistant", "a3")])
        await log_backend.settle(s.session_id)
        want = await reads(s, LIMITS)
        assert "injected" not in want[0]
        assert want[0][-2:] == ["q3", "a3"]
        async with cold(settings, s.session_id, "alice") as c:
            assert await reads(c, LIMITS) == want


async def test_a_cold_read_keeps_tool_numbers_exact(
    log_backend: LogBackend, settings: Settings
) -> None:
    exact = {"big": 12345678901234567890123, "price": Decimal("0.10000000000000000001")}
    async with AsyncSession(user_id="alice", backend=log_backend) as s:
        await s.add_messages(
            [
                ("user", "price?"),
                Message(role="assistant", parts=(ToolUsePart(id="t1", name="quote", input=exact),)),
                Message(role="user", parts=(ToolResultPart(tool_use_id="t1", content=exact),)),
                ("assistant", "done"),
            ]
        )
        await log_backend.settle(s.session_id)
        want = await s.get_messages(limit=1)
        async with cold(settings, s.session_id, "alice") as c:
            got = await c.get_messages(limit=1)
        assert got == want
        use, result = got[1].parts[0], got[2].parts[0]
        assert isinstance(use, ToolUsePart)
        assert isinstance(result, ToolResultPart)
        assert use.input == exact
        assert result.content == exact
        assert type(use.input["price"]) is Decimal


async def test_a_cold_tail_read_rebuilds_an_expired_newest_run(
    log_backend: LogBackend, settings: Settings
) -> None:
    async with AsyncSession(user_id="alice", backend=log_backend) as s:
        await add_turns(s, 3)
        await log_backend.settle(s.session_id)
        want = await reads(s, LIMITS)
        tail = await log_backend.tail(s.session_id)
        assert tail is not None
        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            await client.delete(Keyspace(settings.redis_key_prefix).generation(0).body(tail.run_id))
        finally:
            await client.aclose()
        async with (
            LogBackend(settings, decoded_bytes=0) as backend,
            AsyncSession(s.session_id, user_id="alice", backend=backend) as c,
        ):
            assert await reads(c, (1, 2)) == [want[1], want[2]]
            assert backend.cache.misses >= 1  # rebuilt from the log


async def test_a_reopen_asks_the_index_while_a_run_stands_for_the_owner(
    log_backend: LogBackend, settings: Settings
) -> None:
    """A session no ``session_created`` declared is its first run's writer's
    until one does: a backend that saw it then does not keep that owner."""
    session_id, run_id = ids.new_event_id(), ids.new_event_id()
    first = [Message(role="user", parts=(TextPart(text="first"),))]
    events = run_events(
        run_id,
        session_id,
        Caller(user_id="mallory"),
        check_run(run_id, [], first, ["-"], token="t"),
        token="t",
        at=now(),
        source="session",
    )
    last = (await publish_retrying(log_backend.publisher, events))[-1]
    await log_backend.cache.wait_for(last, 30)

    async def indexed() -> bool:
        info = await log_backend.describe(session_id)
        return info is not None and info.user_id == "mallory"

    await assert_eventually(indexed, timeout=30)
    async with LogBackend(settings) as backend:
        async with AsyncSession(session_id, user_id="mallory", backend=backend) as m:
            assert texts(await m.get_messages()) == ["first"]
        # Alice's session_created declares the owner: it is hers from now on.
        created = SessionCreated(user_id="alice")
        await backend.write_session_events(
            [session_event(created, session_id, Caller(user_id="alice"), token="t2")]
        )
        with pytest.raises(NotFoundError):
            await AsyncSession(session_id, user_id="mallory", backend=backend).open()
        async with AsyncSession(session_id, user_id="alice", backend=backend) as a:
            assert not a.created
