"""One run at a time on a session, by agent policy: racing runs through the orchestrator
on the stack (two instances in one consumer group, so racing runs are often decided
by different instances)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

from runwire.client import Client, RunOutcome
from runwire.context import seeded_runs
from runwire.contract.events import (
    ContextSeeded,
    Event,
    EventType,
    RunFailed,
    RunStatus,
    SessionWriterClaimed,
)
from runwire.log import Publisher
from runwire.projections.sessions.reader import SessionIndex
from runwire.providers.local import LocalModel
from runwire.services.orchestrator.agents import AgentDirectory, AgentProfile
from runwire.services.orchestrator.concurrency import ConcurrentRuns
from runwire.services.orchestrator.wiring import orchestrator_service, session_fence
from runwire.sessions import AsyncSession, SessionBusy
from runwire.settings import Settings
from tests.helpers import assert_eventually
from tests.integration.orchestration_support import projectors


@contextlib.asynccontextmanager
async def orchestrators(settings: Settings, policy: ConcurrentRuns) -> AsyncIterator[None]:
    agents = AgentDirectory(AgentProfile(concurrent_runs=policy))
    async with (
        orchestrator_service(settings, provider=LocalModel(latency=1.5), agents=agents),
        orchestrator_service(settings, provider=LocalModel(latency=1.5), agents=agents),
    ):
        yield


def seeded(outcome: RunOutcome) -> list[str]:
    found = [e.payload for e in outcome.events if e.type is EventType.CONTEXT_SEEDED]
    return [r.run_id for p in found if isinstance(p, ContextSeeded) for r in seeded_runs(p)]


async def race(rw: Client, session: str) -> tuple[RunOutcome, RunOutcome]:
    a, b = await asyncio.gather(
        rw.run("assistant", "My name is Alice.", session_id=session, user_id="alice"),
        rw.run("assistant", "What is 2 + 3?", session_id=session, user_id="alice"),
    )
    first, second = await asyncio.gather(a.wait(90), b.wait(90))
    return first, second


async def test_refuse_one_of_two_racing_runs_fails_session_busy(settings: Settings) -> None:
    session = f"busy-{uuid.uuid4().hex[:8]}"
    async with projectors(settings), orchestrators(settings, "refuse"), Client(settings) as rw:
        for _ in range(2):  # twice: the second race starts from a released session
            outcomes = await race(rw, session)
            done = [o for o in outcomes if o.status is RunStatus.COMPLETED]
            failed = [o for o in outcomes if o.status is RunStatus.FAILED]
            assert (len(done), len(failed)) == (1, 1), [o.status for o in outcomes]
            error = failed[0].error
            assert isinstance(error, RunFailed)
            assert error.error_kind == "session_busy"
            assert done[0].run_id in error.message, "the reason names the run holding it"
            assert "'refuse'" in error.message
            # The refused run never reached the model.
            assert not [e for e in failed[0].events if e.type is EventType.ASSISTANT_TEXT]


async def test_queue_runs_one_after_the_other(settings: Settings) -> None:
    session = f"queue-{uuid.uuid4().hex[:8]}"
    async with projectors(settings), orchestrators(settings, "queue"), Client(settings) as rw:
        one, two = await race(rw, session)
        assert one.status is RunStatus.COMPLETED, one.error
        assert two.status is RunStatus.COMPLETED, two.error
        # Whichever went second saw the first whole in its history: they did not overlap.
        later, earlier = (one, two) if two.run_id in seeded(one) else (two, one)
        assert earlier.run_id in seeded(later)
        assert later.run_id not in seeded(earlier)
        ended = earlier.events[-1].occurred_at
        answered = [e for e in later.events if e.type is EventType.ASSISTANT_TEXT]
        assert answered
        assert answered[0].occurred_at >= ended, "the queued run answered after the first ended"
        # Both released: the session's version counts the two runs, nobody holds it.
        index = await SessionIndex.connect(settings)
        try:

            async def released() -> bool:
                row = await index.get(session)
                assert (row.version, row.writer) == (2, None)
                return True

            await assert_eventually(released, timeout=20)
        finally:
            await index.close()


async def test_a_running_run_refuses_a_versioned_session_write(settings: Settings) -> None:
    """The fence is one for runs and Session API writers alike."""
    session = f"mixed-{uuid.uuid4().hex[:8]}"
    async with (
        projectors(settings),
        orchestrators(settings, "refuse"),
        Client(settings) as rw,
        AsyncSession(session, user_id="alice", settings=settings) as s,
    ):
        await s.open()
        version = await s.version()
        handle = await rw.run("assistant", "What is 2 + 3?", session_id=session, user_id="alice")

        async def held() -> bool:
            assert (await s.info()).writer == handle.run_id
            return True

        await assert_eventually(held, timeout=20)
        with pytest.raises(SessionBusy) as busy:
            await s.add_message("user", "sneaking in", expected_version=version)
        assert busy.value.holder == handle.run_id
        outcome = await handle.wait(90)
        assert outcome.status is RunStatus.COMPLETED

        async def free() -> bool:
            assert (await s.info()).writer is None
            return True

        await assert_eventually(free, timeout=20)
        read = await s.get_versioned()
        assert read.version == version + 1
        assert read.messages[-1].text() == outcome.text, "the new version shows the run's answer"
        assert await s.add_message("user", "now", expected_version=read.version) == version + 2


async def _claim(settings: Settings, session: str, holder: str) -> None:
    """A claim written as a crashed holder would have left it (never released)."""
    claim = Event.create(SessionWriterClaimed(holder=holder), session_id=session, user_id="alice")
    async with Publisher(settings) as pub:
        at = await pub.publish(claim)
    index = await SessionIndex.connect(settings)
    try:
        await index.wait_for(at, 20)
        assert (await index.get(session)).writer == holder
    finally:
        await index.close()


async def test_a_claim_left_by_an_ended_run_is_released_by_the_next(settings: Settings) -> None:
    session = f"left-{uuid.uuid4().hex[:8]}"
    async with projectors(settings), orchestrators(settings, "refuse"), Client(settings) as rw:
        ended = await (await rw.run("other", "What is 1 + 1?", user_id="alice")).wait(60)
        assert ended.status is RunStatus.COMPLETED
        # As if that run had held the session and its orchestrator died before releasing.
        await _claim(settings, session, ended.run_id)
        outcome = await (
            await rw.run("assistant", "What is 2 + 3?", session_id=session, user_id="alice")
        ).wait(90)
        assert outcome.status is RunStatus.COMPLETED, outcome.error


async def test_a_queued_run_gives_up_after_its_queue_timeout(settings: Settings) -> None:
    session = f"stuck-{uuid.uuid4().hex[:8]}"
    agents = AgentDirectory(AgentProfile(concurrent_runs="queue"))
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(projectors(settings))
        await _claim(settings, session, "writer-that-never-lets-go")
        publisher = await stack.enter_async_context(Publisher(settings))
        fence = await session_fence(settings, publisher, stack)
        fence.queue_timeout = 2.0
        await stack.enter_async_context(
            orchestrator_service(settings, provider=LocalModel(), agents=agents, gate=fence)
        )
        rw = await stack.enter_async_context(Client(settings))
        outcome = await (
            await rw.run("assistant", "What is 2 + 3?", session_id=session, user_id="alice")
        ).wait(60)
    assert outcome.status is RunStatus.FAILED
    assert isinstance(outcome.error, RunFailed)
    assert outcome.error.error_kind == "session_busy"
    assert "after queueing 2s" in outcome.error.message
    assert "writer-that-never-lets-go" in outcome.error.message
