"""The runs API beyond what the orchestrator tests use: the blocking twin, live events, say."""

from __future__ import annotations

import asyncio

from runwire.client import BlockingClient, Client, RunHandle, RunOutcome
from runwire.contract.events import (
    Event,
    EventType,
    RunCompleted,
    RunStarted,
    RunStatus,
    UserMessage,
)
from runwire.log import Publisher
from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.services.tools.wiring import tool_runner_service
from runwire.settings import Settings


def script(settings: Settings) -> tuple[RunOutcome, list[EventType]]:
    """What a script without asyncio does."""
    with BlockingClient(settings) as rw:
        handle = rw.run("assistant", "what is 2 + 3?")
        kinds = [event.type for event in handle.events()]
        return handle.wait(timeout=30), kinds


async def test_the_blocking_client_runs_and_follows_a_run(settings: Settings) -> None:
    async with orchestrator_service(settings, history=False), tool_runner_service(settings):
        outcome, kinds = await asyncio.to_thread(script, settings)
    assert outcome.status is RunStatus.COMPLETED
    assert outcome.text == "2 + 3 = 5."
    assert kinds[0] is EventType.RUN_STARTED
    assert kinds[-1] is EventType.RUN_COMPLETED
    assert [e.type for e in outcome.events] == kinds


async def waiting_for_its_tool(handle: RunHandle) -> str:
    """Follow a run until it waits for a tool nobody runs; the tool_use id."""
    tool_use_id = None
    async for event in handle.events():
        if event.type is EventType.RUN_STATUS_CHANGED and tool_use_id:
            return tool_use_id  # awaiting_tools
        if event.type is EventType.TOOL_USE:
            tool_use_id = event.payload.id  # type: ignore[union-attr]
    raise AssertionError(f"run {handle.run_id} ended without waiting for a tool")


async def test_live_events_start_at_the_end_and_external_tools_wait_for_resume(
    settings: Settings,
) -> None:
    # No tool runner: the calculator is answered from outside.
    async with orchestrator_service(settings, history=False), Client(settings) as rw:
        handle = await rw.run("assistant", "what is 3 * 3?")
        tool_use_id = await waiting_for_its_tool(handle)
        # Awaiting the live stream resolves the end of the log there and then:
        # the tool result, published before anything iterates the stream, is
        # its first event (a stream resolving the end on its first iteration
        # starts after it and never sees it). Nothing else came in between:
        # the run waits for its tool.
        live = await handle.events(from_start=False)
        await handle.resume({tool_use_id: {"result": 9}})
        first_live = await asyncio.wait_for(anext(live), timeout=30)
        assert first_live.type is EventType.TOOL_RESULT
        await live.aclose()
        outcome = await handle.wait(timeout=30)
    assert outcome.text == "3 * 3 = 9."


def answer_from_a_script(settings: Settings, run_id: str, tool_use_id: str) -> EventType:
    """A script follows a waiting run live, answers its tool, and reads what came next."""
    with BlockingClient(settings) as rw:
        live = rw.handle(run_id).events(from_start=False)  # the log's end, resolved here
        rw.resume(run_id, {tool_use_id: {"result": 16}})
        try:
            return next(live).type
        finally:
            live.close()


async def test_the_blocking_live_events_start_where_the_call_was_made(
    settings: Settings,
) -> None:
    async with orchestrator_service(settings, history=False), Client(settings) as rw:
        handle = await rw.run("assistant", "what is 4 * 4?")
        tool_use_id = await waiting_for_its_tool(handle)
        first_live = await asyncio.to_thread(
            answer_from_a_script, settings, handle.run_id, tool_use_id
        )
        assert first_live is EventType.TOOL_RESULT
        outcome = await handle.wait(timeout=30)
    assert outcome.text == "4 * 4 = 16."


async def test_live_events_give_each_event_once_with_its_first_body(settings: Settings) -> None:
    run_id = "repeated-1"
    started = Event.create(RunStarted(agent_id="assistant"), run_id=run_id)
    said = Event.create(UserMessage(parts=["first"]), run_id=run_id)
    rewritten = said.model_copy(update={"payload": UserMessage(parts=["second"])})
    done = Event.create(RunCompleted(), run_id=run_id)
    async with Publisher(settings) as publisher:
        await publisher.publish_many([started, said, said, rewritten, done])
    async with Client(settings) as rw:
        seen = [event async for event in rw.handle(run_id).events()]
    assert [e.event_id for e in seen] == [started.event_id, said.event_id, done.event_id]
    assert seen[1].payload == UserMessage(parts=["first"])
