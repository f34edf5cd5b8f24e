"""Pause and resume: a paused run gets no new model call until it is resumed."""

from __future__ import annotations

import asyncio

import pytest

from runwire.client import Client
from runwire.contract.events import EventType, RunStatus, RunStatusChanged
from runwire.errors import RunwireError
from runwire.providers.base import ChunkHandler, ModelRequest, ModelResponse
from runwire.providers.local import LocalModel
from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.services.tools.wiring import tool_runner_service
from runwire.settings import Settings


class CountingModel(LocalModel):
    """The local model, counting its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def complete(
        self, request: ModelRequest, *, on_chunk: ChunkHandler | None = None
    ) -> ModelResponse:
        self.calls += 1
        return await super().complete(request, on_chunk=on_chunk)


async def test_pause_during_a_tool_call_holds_the_next_model_call_until_resume(
    settings: Settings,
) -> None:
    model = CountingModel()
    async with (
        orchestrator_service(settings, provider=model, history=False),
        tool_runner_service(settings, tool_latency=1.0),
        Client(settings) as rw,
    ):
        handle = await rw.run("assistant", "what is 6 * 7?", session_id="pause-1")
        async for event in handle.events():
            if event.type is EventType.TOOL_USE:
                break
        await handle.pause("a human wants to look first")
        # The calculator (1 s) was most likely running already: its result
        # lands, but the model is not called again while the run is paused.
        await asyncio.sleep(2.5)
        assert model.calls == 1
        await handle.resume()
        outcome = await handle.wait(timeout=30)
    assert outcome.status is RunStatus.COMPLETED
    assert "6 * 7 = 42." in outcome.text
    assert model.calls == 2
    statuses = [e.payload.status for e in outcome.events if isinstance(e.payload, RunStatusChanged)]
    assert RunStatus.PAUSED in statuses
    paused_at = statuses.index(RunStatus.PAUSED)
    assert statuses[paused_at + 1 :].count(RunStatus.RUNNING) == 1  # the answer after resume


async def test_pause_holds_tools_not_started_and_a_finished_run_cannot_be_paused(
    settings: Settings,
) -> None:
    async with (
        orchestrator_service(settings, history=False),
        Client(settings) as rw,
    ):
        handle = await rw.run("assistant", "what is 1 + 2?")
        async for event in handle.events():
            if event.type is EventType.TOOL_USE:
                break
        await handle.pause()
        # The tool runner starts now: the call waits while the run is paused.
        async with tool_runner_service(settings) as runner:
            await runner.wait_caught_up(timeout=30)
            await asyncio.sleep(1.0)
            assert runner.stats.executed == 0
            await handle.resume()
            outcome = await handle.wait(timeout=30)
            assert runner.stats.executed == 1
        assert outcome.status is RunStatus.COMPLETED
        with pytest.raises(RunwireError, match="has ended"):
            await handle.pause()
        with pytest.raises(RunwireError, match="is not paused"):
            await handle.resume()
