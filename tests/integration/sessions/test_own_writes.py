"""A writer's new turn is durable and served to it at the broker's acknowledgement;
other readers see it once the transcript cache has applied it.

The run-status and transcripts projectors (what readers read runs from) are
held back so "before the cache has it" is a fact of the test, not a race.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from runwire.projections.runtime.waiting import NotCaughtUpError
from runwire.projections.transcripts.claims import Claim, RunClaims
from runwire.sessions import AsyncSession
from runwire.sessions.embedded import projectors_running
from runwire.sessions.log_backend import LogBackend
from runwire.settings import Settings
from runwire.transcript.messages import Message
from tests.helpers import assert_eventually

WITHOUT_TRANSCRIPTS = ("sessions", "memory")


def texts(messages: list[Message]) -> list[str]:
    return [m.text() for m in messages]


async def test_a_new_turn_is_served_to_its_writer_before_the_cache_has_it(
    settings: Settings,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(projectors_running(settings, names=WITHOUT_TRANSCRIPTS))
        mine = await stack.enter_async_context(LogBackend(settings))
        other = await stack.enter_async_context(LogBackend(settings))
        s = await stack.enter_async_context(AsyncSession(user_id="alice", backend=mine))
        # Each call opens a run of its own (a turn): served here at once.
        await s.add_messages([("user", "hello"), ("assistant", "hi")])
        assert texts(await s.get_messages()) == ["hello", "hi"]
        await s.add_messages([("user", "second turn"), ("assistant", "ok")])
        written = texts(await s.get_messages())
        assert written == ["hello", "hi", "second turn", "ok"]
        assert texts(await s.get_messages(limit=1)) == ["second turn", "ok"]
        o = await stack.enter_async_context(
            AsyncSession(s.session_id, user_id="alice", backend=other)
        )
        # The other reader reads the projection, which has not applied the runs.
        assert await o.get_messages() == []
        await stack.enter_async_context(projectors_running(settings, names=("runs", "transcripts")))

        async def seen_by_the_other() -> bool:
            return texts(await o.get_messages()) == written

        await assert_eventually(seen_by_the_other)
        # Confirmed: the writer now reads the cache, and it says the same.
        await mine.settle(s.session_id)
        assert texts(await s.get_messages()) == written


async def test_a_slow_cache_keeps_the_write_served_and_settle_says_so(
    settings: Settings,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(projectors_running(settings, names=WITHOUT_TRANSCRIPTS))
        mine = await stack.enter_async_context(LogBackend(settings))
        s = await stack.enter_async_context(AsyncSession(user_id="alice", backend=mine))
        await s.add_message("user", "hello")  # durable; the cache is not running
        # From now on the backend waits half a second for a projection (its first
        # write waited for the session index as long as a loaded machine needs).
        mine.wait_timeout = 0.5
        await asyncio.sleep(1.0)  # longer than that
        # Still served to the writer (a slow cache is no failure) ...
        assert texts(await s.get_messages()) == ["hello"]
        await s.add_message("assistant", "hi")
        assert texts(await s.get_messages()) == ["hello", "hi"]
        # ... and what needs the cache says it is behind.
        with pytest.raises(NotCaughtUpError, match="has not applied"):
            await mine.settle(s.session_id)
        await stack.enter_async_context(projectors_running(settings, names=("runs", "transcripts")))
        mine.wait_timeout = 10.0
        await mine.settle(s.session_id)  # confirmed once the cache runs
        assert texts(await reader_messages(settings, s.session_id)) == ["hello", "hi"]


async def test_visible_to_everyone_returns_once_the_cache_has_it(settings: Settings) -> None:
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(projectors_running(settings))
        mine = await stack.enter_async_context(LogBackend(settings, visible_to="everyone"))
        other = await stack.enter_async_context(LogBackend(settings))
        s = await stack.enter_async_context(AsyncSession(user_id="alice", backend=mine))
        o = await stack.enter_async_context(
            AsyncSession(s.session_id, user_id="alice", backend=other)
        )
        for i in range(5):
            await s.add_message("user", f"q{i}")
            await s.add_message("assistant", f"a{i}")
            # No waiting: on return, a reader elsewhere sees it.
            assert texts(await o.get_messages())[-2:] == [f"q{i}", f"a{i}"]


async def test_racing_appenders_take_turns_and_lose_nothing(settings: Settings) -> None:
    """Two writers (their own backends, as two processes) append to the same run at
    once: each append runs under the run's claim against its true state, so every
    call that returned is in the transcript exactly once and none was refused."""
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(projectors_running(settings))
        first = await stack.enter_async_context(LogBackend(settings))
        second = await stack.enter_async_context(LogBackend(settings))
        a = await stack.enter_async_context(AsyncSession(user_id="alice", backend=first))
        b = await stack.enter_async_context(
            AsyncSession(a.session_id, user_id="alice", backend=second)
        )
        await a.add_message("user", "start")
        await first.settle(a.session_id)

        async def writes(session: AsyncSession, name: str) -> list[str]:
            done = []
            for i in range(15):
                token = f"<{name}{i}>"
                # Consecutive user text joins the open user message: an append.
                await session.add_message("user", token)
                done.append(token)
            return done

        written = await asyncio.gather(writes(a, "a"), writes(b, "b"))
        await first.settle(a.session_id)
        await second.settle(a.session_id)
        async with (
            LogBackend(settings) as fresh,
            AsyncSession(a.session_id, user_id="alice", backend=fresh) as reader,
        ):
            text = "\n".join(texts(await reader.get_messages()))
        for token in [t for tokens in written for t in tokens]:
            assert text.count(token) == 1, (token, text)
        assert len(await reader_messages(settings, a.session_id)) == 1


async def reader_messages(settings: Settings, session_id: str) -> list[Message]:
    async with (
        LogBackend(settings) as fresh,
        AsyncSession(session_id, user_id="alice", backend=fresh) as reader,
    ):
        return await reader.get_messages()


async def test_a_lone_writer_never_reads_its_run_again(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One writer alone: every append takes the run's claim once (its own view of
    the run is never stale, so it never plans again)."""
    takes: list[bool] = []
    take = RunClaims.take

    async def counted(self: RunClaims, run_id: str) -> Claim:
        claim = await take(self, run_id)
        takes.append(claim.taken)
        return claim

    monkeypatch.setattr(RunClaims, "take", counted)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(projectors_running(settings))
        mine = await stack.enter_async_context(LogBackend(settings))
        s = await stack.enter_async_context(AsyncSession(user_id="alice", backend=mine))
        for i in range(20):
            await s.add_message("user", f"q{i}")
            await s.add_message("assistant", f"a{i}")
        assert takes == [True] * 20  # one per assistant message (each an append)
        expected = [t for i in range(20) for t in (f"q{i}", f"a{i}")]
        assert texts(await s.get_messages()) == expected
        await mine.settle(s.session_id)
        assert texts(await reader_messages(settings, s.session_id)) == expected
