"""How the log-backed session reads its history from the transcript cache (one
script call per read), on the real stack: paths the contract suite does not reach."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from runwire.contract import ids
from runwire.contract.events import now
from runwire.memory.checks import Caller
from runwire.projections.transcripts.keys import Keyspace
from runwire.sessions import AsyncSession
from runwire.sessions.log_backend import LogBackend
from runwire.sessions.planning import from_millis, run_events
from runwire.settings import Settings
from runwire.transcript.ledger import payloads_for_message
from runwire.transcript.messages import Message, TextPart

pytestmark = pytest.mark.integration


async def _assistant_run(backend: LogBackend, s: AsyncSession, text: str) -> str:
    """A recorded run holding one assistant message (no turn starts in it), timed
    after the session's latest run."""
    tail = await backend.tail(s.session_id)
    assert tail is not None
    run_id = ids.new_event_id()
    message = Message(role="assistant", parts=(TextPart(text=text),))
    at = max(now(), from_millis(tail.first_ms + 2))
    await backend.write_run(
        run_events(
            run_id,
            s.session_id,
            Caller(user_id=s.user_id),
            payloads_for_message(message),
            token=ids.new_event_id(),
            at=at,
            source="session",
        )
    )
    return run_id


async def test_limit_reads_further_back_when_the_last_runs_hold_too_few_turns(
    log_backend: LogBackend, settings: Settings
) -> None:
    async with AsyncSession(user_id="alice", backend=log_backend) as s:
        for i in range(3):
            await s.add_messages([("user", f"q{i}"), ("assistant", f"a{i}")])
        notes = [await _assistant_run(log_backend, s, f"note {i}") for i in range(3)]
        await s.add_messages([("user", "q3"), ("assistant", "a3")])
        everything = [m.text() for m in await s.get_messages()]
        assert everything[:6] == ["q0", "a0", "q1", "a1", "q2", "a2"]
        assert everything[6:] == ["note 0", "note 1", "note 2", "q3", "a3"]
        # limit=2: the last 2 runs hold one turn; the 4 before them hold two more,
        # so the read stops there (the first run is never read).
        runs = await log_backend.history(s.session_id, turns=2)
        assert len(runs) == 6
        assert [m.text() for r in runs for m in r.messages] == everything[2:]
        assert [m.text() for m in await s.get_messages(limit=2)] == everything[4:]
        # Held whole at the session's version now that the cache has every run
        # (the first whole read merged the writer's newest run before the cache had it).
        assert [m.text() for m in await s.get_messages()] == everything
        redis = aioredis.Redis.from_url(settings.redis_url)
        try:
            # A run of the further batch expired: rebuilt from the log, same answer
            # (by a backend that does not hold the session from an earlier read).
            await redis.delete(Keyspace(settings.redis_key_prefix).generation(0).body(notes[0]))
            assert [m.text() for m in await s.get_messages(limit=2)] == everything[4:]
            async with (
                LogBackend(settings) as fresh,
                AsyncSession(s.session_id, user_id="alice", backend=fresh) as cold,
            ):
                assert [m.text() for m in await cold.get_messages(limit=2)] == everything[4:]
                assert fresh.cache.misses == 1
            assert [m.text() for m in await s.get_messages(limit=1)] == ["q3", "a3"]
            # Redis flushed: the run-status store lists the runs, the log fills them.
            async for key in redis.scan_iter(match=f"{settings.redis_key_prefix}:*"):
                await redis.delete(key)
            assert [m.text() for m in await s.get_messages(limit=2)] == everything[4:]
            assert [m.text() for m in await s.get_messages()] == everything
        finally:
            await redis.aclose()


async def test_the_tail_is_the_latest_run_read_in_one_call(log_backend: LogBackend) -> None:
    async with AsyncSession(user_id="alice", backend=log_backend) as s:
        assert await log_backend.tail(s.session_id) is None
        await s.add_messages([("user", "q0"), ("assistant", "a0")])
        await s.add_message("user", "q1")
        tail = await log_backend.tail(s.session_id)
        assert tail is not None
        assert tail.recorded
        assert [m.text() for m in tail.messages] == ["q1"]
        runs = await log_backend.history(s.session_id)
        assert (tail.run_id, tail.first_ms) == (runs[-1].run_id, runs[-1].first_ms)
