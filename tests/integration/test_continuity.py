"""Continuing an interrupted session on the real stack.

kill -9 of every service in the middle of a model call: after a restart the
run completes and the session goes on with its history. The watchdog fails a
run nobody will answer, with a readable reason, exactly once, and leaves
completed and paused runs alone, and tool-waiting ones unless a tool
deadline is set.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from functools import partial

from runwire.client import Client
from runwire.contract.events import EventType, RunFailed, RunStatus
from runwire.projections.runs.reader import RunStore
from runwire.providers.local import LocalModel
from runwire.services.orchestrator.watchdog import WATCHDOG_PRODUCER, Watchdog
from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.services.process import ServiceProcess
from runwire.sessions.api import AsyncSession
from runwire.settings import Settings
from runwire.transcript.messages import TextPart
from tests.helpers import assert_eventually
from tests.integration.orchestration_support import projectors, read_run_log

PROJECTORS = ("projector-runs", "projector-sessions", "projector-transcripts")


def _all_services(settings: Settings) -> list[ServiceProcess]:
    """Projectors, tool runner and orchestrator (with history, each model call 2 s)."""
    quiet = ("--log-level", "WARNING")
    out = [ServiceProcess.serve(name, settings, *quiet) for name in PROJECTORS]
    out.append(ServiceProcess("tools", settings, ["-m", "runwire.services", "tools", *quiet]))
    out.append(
        ServiceProcess(
            "orchestrator",
            settings,
            ["-m", "runwire.services", "orchestrator", "--local-latency", "2", *quiet],
        )
    )
    return out


async def _start(services: list[ServiceProcess]) -> None:
    for service in services:
        await service.start()
    await asyncio.gather(*(s.wait_caught_up() for s in services))


async def test_kill_9_of_every_service_mid_call_then_the_session_goes_on(
    settings: Settings,
) -> None:
    session = "continuity-1"
    first, second = _all_services(settings), _all_services(settings)
    try:
        await _start(first)
        async with Client(settings) as rw:
            told = await (await rw.run("assistant", "My name is Alice.", session_id=session)).wait(
                60
            )
            assert told.text == "Nice to meet you, Alice!"
            asked = await rw.run("assistant", "What's my name?", session_id=session)

            async def acknowledged() -> bool:
                return any(
                    r.event.run_id == asked.run_id and r.event.type is EventType.RUN_STATUS_CHANGED
                    for r in await read_run_log(settings)
                )

            await assert_eventually(acknowledged, timeout=30, interval=0.05)  # mid-call now
            await asyncio.gather(*(s.kill9() for s in first))
            ended = [
                r.event for r in await read_run_log(settings) if r.event.run_id == asked.run_id
            ]
            assert not any(e.type is EventType.RUN_COMPLETED for e in ended), "killed too late"

            await _start(second)
            outcome = await asked.wait(60)
            assert outcome.status is RunStatus.COMPLETED, outcome.error
            assert outcome.text == "Your name is Alice."
            # The run-status projection shows it ended, not `running`, once the
            # restarted projector has read that far (read-your-writes, not instant).
            async with await RunStore.connect(settings) as runs:

                async def shows_it_ended() -> bool:
                    row = await runs.get(asked.run_id)
                    return row.status == RunStatus.COMPLETED.value

                await assert_eventually(shows_it_ended, timeout=30, interval=0.1)

            # The conversation goes on with its whole history after the restart.
            again = await (await rw.run("assistant", "What's my name?", session_id=session)).wait(
                60
            )
            assert again.text == "Your name is Alice."
        # The session API reads the whole conversation, the interrupted run included.
        async with AsyncSession(session_id=session, settings=settings) as chat:
            said = [
                part.text
                for message in await chat.get_messages()
                for part in message.parts
                if isinstance(part, TextPart)
            ]
        assert said == [
            "My name is Alice.",
            "Nice to meet you, Alice!",
            "What's my name?",
            "Your name is Alice.",
            "What's my name?",
            "Your name is Alice.",
        ]
    finally:
        for service in [*first, *second]:
            await service.stop()


async def test_the_watchdog_fails_a_run_nobody_answers_once_and_only_that(
    settings: Settings,
) -> None:
    async with (
        projectors(settings),
        Client(settings) as rw,
        await RunStore.connect(settings) as runs,
    ):
        # A run that completes, while an orchestrator runs.
        slow = LocalModel(latency=1.0)
        async with orchestrator_service(settings, history=False, provider=slow):
            done = await (await rw.run("assistant", "Hello there.")).wait(60)
            # A run waiting for its tool call (no tool runner): a legitimate wait.
            waiting = await rw.run("assistant", "What is 3 * 7 + 1?")
            # A run paused during its model call: the answer lands after the
            # pause, so its row says awaiting_tools while the run is paused.
            paused = await rw.run("assistant", "What is 5 * 7 + 1?")
            await assert_eventually(lambda: _status(runs, paused.run_id, "running"), timeout=20)
            await paused.pause()
            for handle in (waiting, paused):
                await assert_eventually(
                    partial(_status, runs, handle.run_id, "awaiting_tools"), timeout=20
                )
        assert done.status is RunStatus.COMPLETED
        # A run nobody will answer: no orchestrator from now on.
        orphan = await rw.run("assistant", "Is anyone there?")
        await assert_eventually(lambda: _status(runs, orphan.run_id, "pending"), timeout=20)
        # As if the deadline (2 s) had passed for every run so far (taken now: on a
        # loaded machine the runs above may take longer than that).
        later = datetime.now(UTC) + timedelta(seconds=5)

        # Before the deadline nothing is failed.
        async with Watchdog(settings, stall_seconds=2) as early:
            assert await early.sweep() == []
        # Two watchdogs past the deadline: both find it, and write the same event.
        async with (
            Watchdog(settings, stall_seconds=2, now=lambda: later) as one,
            Watchdog(settings, stall_seconds=2, now=lambda: later) as two,
        ):
            found = [*await one.sweep(), *await two.sweep()]
        assert {s.run_id for s in found} == {orphan.run_id}  # never the completed one
        assert {s.error_kind for s in found} == {"owner_lost"}

        outcome = await orphan.wait(30)
        assert outcome.status is RunStatus.FAILED
        assert isinstance(outcome.error, RunFailed)
        assert outcome.error.error_kind == "owner_lost"
        assert "no orchestrator answered" in outcome.error.message
        await assert_eventually(lambda: _status(runs, orphan.run_id, "failed"), timeout=20)
        row = await runs.get(orphan.run_id)
        assert row.last_error is not None
        assert "owner_lost" in str(row.last_error)

        failures = [
            r.event for r in await read_run_log(settings) if r.event.producer == WATCHDOG_PRODUCER
        ]
        assert len({e.event_id for e in failures}) == 1  # one failure, however often written
        assert {e.run_id for e in failures} == {orphan.run_id}
        # A failed run is not failed again.
        async with Watchdog(settings, stall_seconds=2, now=lambda: later) as third:
            assert await third.sweep() == []

        # Served (`runwire serve watchdog`) with a deadline for tool waits too:
        # the tool-waiting run is failed, the completed one still is not.
        dog = ServiceProcess.serve(
            "watchdog",
            settings.model_copy(
                update={"watchdog_stall_seconds": 2.0, "watchdog_tools_seconds": 2.0}
            ),
            "--log-level",
            "WARNING",
        )
        try:
            await dog.start()
            await dog.wait_caught_up()
            timed_out = await waiting.wait(30)
        finally:
            await dog.stop()
        assert timed_out.status is RunStatus.FAILED
        assert timed_out.error is not None
        assert timed_out.error.error_kind == "awaiting_tools_timeout"
        assert "waited for tool results too long" in timed_out.error.message
        assert (await runs.get(done.run_id)).status == RunStatus.COMPLETED.value
        assert (await runs.get(paused.run_id)).status == RunStatus.AWAITING_TOOLS.value
        failed_by_dog = {
            r.event.run_id
            for r in await read_run_log(settings)
            if r.event.producer == WATCHDOG_PRODUCER
        }
        assert failed_by_dog == {orphan.run_id, waiting.run_id}  # never the paused one


async def _status(runs: RunStore, run_id: str, status: str) -> bool:
    try:
        return (await runs.get(run_id)).status == status
    except Exception:
        return False


async def test_the_watchdog_skips_a_run_it_cannot_read_and_sweeps_the_others(
    settings: Settings,
) -> None:
    """A record of a run that does not decode (the projectors dead-letter it) leaves
    that run unjudged; the sweep still fails the other stalled runs."""
    from aiokafka import AIOKafkaProducer

    from runwire.contract.events import Event, RunStarted, UserMessage
    from runwire.log import Publisher

    later = datetime.now(UTC) + timedelta(seconds=5)
    poisoned, orphans = "run-poisoned", ["run-orphan-a", "run-orphan-z"]
    async with projectors(settings), await RunStore.connect(settings) as runs:
        async with Publisher(settings) as publisher:
            raw = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
            await raw.start()
            try:
                for run_id in sorted([poisoned, *orphans]):
                    await publisher.publish(Event.create(RunStarted(agent_id="a"), run_id=run_id))
                    if run_id == poisoned:
                        await raw.send_and_wait(
                            settings.run_events, b"not avro", key=run_id.encode()
                        )
                    await publisher.publish(Event.create(UserMessage(parts=["hi"]), run_id=run_id))
            finally:
                await raw.stop()
        for run_id in [poisoned, *orphans]:
            await assert_eventually(partial(_status, runs, run_id, "pending"), timeout=20)
        async with Watchdog(settings, stall_seconds=2, now=lambda: later) as dog:
            found = await dog.sweep()
    assert {s.run_id for s in found} == set(orphans)
