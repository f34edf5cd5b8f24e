"""Approvals of tool calls on the real stack: a held call waits (phase
``awaiting_approval``, no tool runs), an approval runs it, a denial reaches the
model as an error result, the watchdog's tool timeout applies."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from runwire.client import Client
from runwire.contract.events import (
    ApprovalDecided,
    ApprovalRequested,
    EventType,
    RunFailed,
    RunStatus,
    ToolResult,
)
from runwire.errors import InputError, NotFoundError
from runwire.projections.runs.fold import Run
from runwire.projections.runs.reader import RunStore
from runwire.services.orchestrator.watchdog import Watchdog
from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.services.tools.wiring import tool_runner_service
from runwire.settings import Settings
from tests.helpers import assert_eventually
from tests.integration.orchestration_support import projectors

AGENTS = """
[agents.careful]
tools = ["calculator", "clock"]
approval = ["calculator"]
history = false
"""


def _settings(settings: Settings, tmp_path: Path) -> Settings:
    path = tmp_path / "agents.toml"
    path.write_text(AGENTS)
    return settings.model_copy(update={"agents_file": path})


async def _row(runs: RunStore, run_id: str) -> Run | None:
    try:
        return await runs.get(run_id)
    except NotFoundError:
        return None


async def _held(rw: Client, run_id: str) -> dict[str, str]:
    held: dict[str, str] = {}

    async def waiting() -> bool:
        held.update(await rw.approvals(run_id))
        return bool(held)

    await assert_eventually(waiting, timeout=60)
    return held


async def test_a_held_call_waits_then_runs_once_approved(
    settings: Settings, tmp_path: Path
) -> None:
    mine = _settings(settings, tmp_path)
    async with (
        projectors(mine),
        orchestrator_service(mine),
        tool_runner_service(mine) as runner,
        Client(mine) as rw,
        await RunStore.connect(mine) as runs,
    ):
        handle = await rw.run("careful", "what time is it and what is 6 * 7?")
        held = await _held(rw, handle.run_id)
        assert list(held.values()) == ["calculator"]
        (tool_use_id,) = held

        async def phase_is_awaiting_approval() -> bool:
            row = await _row(runs, handle.run_id)
            assert row is not None
            assert row.phase == "awaiting_approval"
            assert row.awaiting_approval == [tool_use_id]
            assert row.status == "awaiting_tools"
            return True

        await assert_eventually(phase_is_awaiting_approval, timeout=30)
        # The clock (not held) ran; the calculator did not.
        await asyncio.sleep(1.0)
        assert runner.stats.executed == 1
        await rw.approve(handle.run_id, tool_use_id, decided_by="ada")
        outcome = await handle.wait(timeout=60)
        with pytest.raises(InputError, match="no tool call"):
            await rw.approve(handle.run_id, tool_use_id)

    assert outcome.status is RunStatus.COMPLETED, outcome.events
    assert "6 * 7 = 42" in outcome.text
    types = [e.type for e in outcome.events]
    # The request precedes the call it holds; one decision; two results.
    requested = types.index(EventType.APPROVAL_REQUESTED)
    assert requested < types.index(EventType.TOOL_USE)
    assert types.count(EventType.APPROVAL_DECIDED) == 1
    results = [e.payload for e in outcome.events if isinstance(e.payload, ToolResult)]
    assert len(results) == 2
    assert not any(r.is_error for r in results)


async def test_a_denial_is_an_error_result_the_model_sees(
    settings: Settings, tmp_path: Path
) -> None:
    mine = _settings(settings, tmp_path)
    async with (
        orchestrator_service(mine, history=False),
        tool_runner_service(mine) as runner,
        Client(mine) as rw,
    ):
        handle = await rw.run("careful", "what is 6 * 7?")
        (tool_use_id,) = await _held(rw, handle.run_id)
        await rw.deny(handle.run_id, tool_use_id, reason="not today", decided_by="ada")
        outcome = await handle.wait(timeout=60)
        with pytest.raises(InputError, match="waiting: none"):
            await rw.deny(handle.run_id, tool_use_id)

    assert outcome.status is RunStatus.COMPLETED, outcome.events
    assert runner.stats.executed == 0
    results = [e for e in outcome.events if isinstance(e.payload, ToolResult)]
    assert len(results) == 1
    result = results[0].payload
    assert isinstance(result, ToolResult)
    assert result.is_error
    assert result.content == "the call of calculator was denied by ada: not today"
    decision = next(e for e in outcome.events if isinstance(e.payload, ApprovalDecided))
    assert results[0].causation_id == decision.event_id
    assert "The calculator tool failed: the call of calculator was denied" in outcome.text


async def test_the_watchdog_fails_a_run_left_waiting_for_approval(
    settings: Settings, tmp_path: Path
) -> None:
    mine = _settings(settings, tmp_path)
    async with (
        projectors(mine),
        orchestrator_service(mine, history=False),
        Client(mine) as rw,
        await RunStore.connect(mine) as runs,
    ):
        handle = await rw.run("careful", "what is 1 + 1?")
        await _held(rw, handle.run_id)

        async def waiting_row() -> bool:
            row = await _row(runs, handle.run_id)
            return row is not None and row.phase == "awaiting_approval"

        await assert_eventually(waiting_row, timeout=30)
        async with Watchdog(mine, stall_seconds=600, tools_seconds=0.5) as watchdog:
            await asyncio.sleep(1.0)
            stalls = await watchdog.sweep()
        outcome = await handle.wait(timeout=30)

    assert [s.error_kind for s in stalls] == ["approval_timeout"]
    assert outcome.status is RunStatus.FAILED
    assert isinstance(outcome.error, RunFailed)
    assert outcome.error.error_kind == "approval_timeout"
    held = [e.payload for e in outcome.events if isinstance(e.payload, ApprovalRequested)]
    assert held[0].tool_use_id in outcome.error.message
    assert not [e for e in outcome.events if e.type is EventType.TOOL_RESULT]


async def test_the_cli_lists_and_denies_a_held_call(settings: Settings, tmp_path: Path) -> None:
    from tests.integration.test_run_cli import invoke

    mine = _settings(settings, tmp_path)
    async with orchestrator_service(mine, history=False), Client(mine) as rw:
        handle = await rw.run("careful", "what is 3 * 3?")
        (tool_use_id,) = await _held(rw, handle.run_id)
        listed = await invoke(mine, ["runs", "approvals", handle.run_id])
        wrong = await invoke(mine, ["runs", "approve", handle.run_id, "toolu_nope"])
        denied = await invoke(
            mine, ["runs", "deny", handle.run_id, tool_use_id, "--reason", "no", "--by", "bo"]
        )
        outcome = await handle.wait(timeout=60)
    assert listed.exit_code == 0, listed.output
    assert f"{tool_use_id}  calculator" in listed.output
    assert wrong.exit_code == 1
    assert "no tool call 'toolu_nope' waiting for approval" in wrong.output
    assert denied.exit_code == 0, denied.output
    assert outcome.status is RunStatus.COMPLETED
    assert "the call of calculator was denied by bo: no" in outcome.text
