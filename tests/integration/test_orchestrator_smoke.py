"""A first end-to-end run: client -> orchestrator -> tool runner -> orchestrator, on the stack."""

from __future__ import annotations

from runwire.client import Client
from runwire.contract.events import EventType, RunStatus
from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.services.tools.wiring import tool_runner_service
from runwire.settings import Settings


async def test_a_tool_using_run_completes(settings: Settings) -> None:
    async with (
        orchestrator_service(settings, history=False),
        tool_runner_service(settings),
        Client(settings) as rw,
    ):
        handle = await rw.run("helper", "what is 12 * (3 + 4)?", session_id="s1")
        outcome = await handle.wait(timeout=60)
    assert outcome.status is RunStatus.COMPLETED, outcome.events
    types = [e.type for e in outcome.events]
    assert EventType.TOOL_USE in types
    assert EventType.TOOL_RESULT in types
    assert "84" in outcome.text
