"""Agents as tools on the real stack: a call of an agent is a child run through the
log; the parent waits and resumes with the child's answer; the run store lists
children and the tree; a parent's cancel cancels its child; a failing child is an
error result the parent's model reads."""

from __future__ import annotations

from pathlib import Path

from runwire.client import Client
from runwire.contract.events import EventType, RunStarted, RunStatus, ToolResult, ToolUse
from runwire.errors import NotFoundError
from runwire.projections.runs.reader import RunStore
from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.services.tools.agent_tools import PARENT_TOOL_USE_LABEL, child_run_id
from runwire.services.tools.wiring import tool_runner_service
from runwire.settings import Settings
from tests.helpers import assert_eventually
from tests.integration.orchestration_support import projectors, read_run_log

AGENTS = """
[agents.boss]
agents = ["manager"]
history = false

[agents.manager]
description = "Delegates sums."
agents = ["helper", "hasty"]
history = false

[agents.helper]
tools = ["calculator"]
history = false

[agents.hasty]
tools = ["calculator"]
history = false
max_turns = 1
"""


def agents_settings(settings: Settings, tmp_path: Path, text: str = AGENTS) -> Settings:
    path = tmp_path / "agents.toml"
    path.write_text(text)
    return settings.model_copy(update={"agents_file": path})


async def test_a_three_level_tree_runs_through_the_log(settings: Settings, tmp_path: Path) -> None:
    mine = agents_settings(settings, tmp_path)
    async with (
        projectors(mine),
        orchestrator_service(mine, history=False),
        tool_runner_service(mine),
        Client(mine) as rw,
        await RunStore.connect(mine) as runs,
    ):
        handle = await rw.run(
            "boss", "ask manager to ask helper to what is 6 * 7?", session_id="s", user_id="u"
        )
        outcome = await handle.wait(timeout=120)

        async def tree_is_whole() -> bool:
            try:
                tree = await runs.tree(handle.run_id)
            except NotFoundError:
                return False
            return len(tree) == 3 and all(r.status == "completed" for _, r in tree)

        await assert_eventually(tree_is_whole, timeout=30)
        tree = await runs.tree(handle.run_id)
        children = await runs.children(handle.run_id)
        async with Client(mine, runs=runs) as reading:
            assert await reading.tree(handle.run_id) == tree
        records = await read_run_log(mine)

    assert outcome.status is RunStatus.COMPLETED, outcome.events
    assert "42" in outcome.text
    (use,) = [e.payload for e in outcome.events if isinstance(e.payload, ToolUse)]
    assert use.name == "manager"
    assert use.input == {"task": "ask helper to what is 6 * 7?"}
    (result,) = [e.payload for e in outcome.events if isinstance(e.payload, ToolResult)]
    manager_run = child_run_id(handle.run_id, use.id)
    assert result.content["run_id"] == manager_run
    assert "42" in result.content["answer"]
    assert [(d, r.agent_id) for d, r in tree] == [(0, "boss"), (1, "manager"), (2, "helper")]
    assert [r.run_id for r in children] == [manager_run]
    manager, helper = tree[1][1], tree[2][1]
    assert manager.parent_run_id == handle.run_id
    assert helper.parent_run_id == manager_run
    assert manager.session_id == helper.session_id == "s"
    assert manager.user_id == helper.user_id == "u"
    assert manager.labels[PARENT_TOOL_USE_LABEL] == use.id
    # One child per tool call, each started once.
    started = [r.event for r in records if isinstance(r.event.payload, RunStarted)]
    assert len(started) == 3


async def test_cancelling_the_parent_cancels_its_child(settings: Settings, tmp_path: Path) -> None:
    mine = agents_settings(settings, tmp_path)
    # The helper's calculator takes a minute: the child waits in awaiting_tools.
    async with (
        orchestrator_service(mine, history=False),
        tool_runner_service(mine, tool_latency=60.0),
        Client(mine) as rw,
    ):
        handle = await rw.run("manager", "ask helper to what is 2 + 2?")
        seen: list[str] = []
        await _wait_for_tool_use(rw, handle.run_id, seen)
        child = child_run_id(handle.run_id, seen[0])
        await _wait_for_type(rw, child, EventType.TOOL_USE)
        await handle.cancel("enough")
        child_outcome = await rw.handle(child).wait(timeout=60)
    assert child_outcome.status is RunStatus.CANCELED
    assert child_outcome.events[-1].payload.reason.startswith(  # type: ignore[union-attr]
        f"the parent run {handle.run_id} ended (run_canceled)"
    )


async def test_a_failing_child_is_an_error_result_for_the_parent(
    settings: Settings, tmp_path: Path
) -> None:
    # The hasty helper may make one model call only, and needs two: it fails (turn_limit).
    mine = agents_settings(settings, tmp_path)
    async with (
        orchestrator_service(mine, history=False),
        tool_runner_service(mine),
        Client(mine) as rw,
    ):
        outcome = await (await rw.run("manager", "ask hasty to what is 2 + 2?")).wait(timeout=90)
    assert outcome.status is RunStatus.COMPLETED, outcome.events
    (result,) = [e.payload for e in outcome.events if isinstance(e.payload, ToolResult)]
    assert result.is_error
    assert "failed: turn_limit" in str(result.content)
    assert "The hasty tool failed" in outcome.text


async def _wait_for_tool_use(rw: Client, run_id: str, seen: list[str]) -> None:
    async def found() -> bool:
        async for event in rw.handle(run_id).events(until_end=False, follow=False):
            if isinstance(event.payload, ToolUse):
                seen.append(event.payload.id)
        return bool(seen)

    await assert_eventually(found, timeout=60)


async def _wait_for_type(rw: Client, run_id: str, kind: EventType) -> None:
    async def found() -> bool:
        async for event in rw.handle(run_id).events(until_end=False, follow=False):
            if event.type is kind:
                return True
        return False

    await assert_eventually(found, timeout=60)
