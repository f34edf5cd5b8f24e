"""The runs API beyond what the orchestrator tests use: the blocking twin, live events, say."""

from __future__ import annotations

import asyncio

from runwire.client import BlockingClient, Client, RunOutcome
from runwire.contract.events import EventType, RunStatus
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


async def test_live_events_start_at_the_end_and_external_tools_wait_for_resume(
    settings: Settings,
) -> None:
    # No tool runner: the calculator is answered from outside.
    async with orchestrator_service(settings, history=False), Client(settings) as rw:
        handle = await rw.run("assistant", "what is 3 * 3?")
        tool_use_id = None
        async for event in handle.events():
            if event.type is EventType.RUN_STATUS_CHANGED and tool_use_id:
                break  # awaiting_tools
            if event.type is EventType.TOOL_USE:
                tool_use_id = event.payload.id  # type: ignore[union-attr]
        assert tool_use_id is not None
        live = handle.events(from_start=False)
        first_live = asyncio.ensure_future(anext(live))
        # The live reader resolves "the end" when it first runs; under load
        # that can take a while, and a resume before it would be missed.
        await asyncio.sleep(2.0)
        assert not first_live.done()  # nothing new happens while the run waits
        await handle.resume({tool_use_id: {"result": 9}})
        assert (await first_live).type is EventType.TOOL_RESULT
        await live.aclose()  # type: ignore[attr-defined]
        outcome = await handle.wait(timeout=30)
    assert outcome.text == "3 * 3 = 9."
