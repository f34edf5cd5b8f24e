"""kill -9 of the tool runner (which runs agent tools) or of the orchestrator while
parent runs wait for their child runs. After a restart every parent completes with
its child's answer, every agent call has started exactly one child (one
``run_started`` record), every delta of every run exactly one closing record and
every tool call exactly one result record."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from runwire.client import Client
from runwire.contract.events import EventType, RunStarted, RunStatus, ToolUse
from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.services.tools.agent_tools import child_run_id
from runwire.services.tools.wiring import tool_runner_service
from runwire.settings import Settings
from tests.helpers import assert_eventually
from tests.integration.orchestration_support import (
    LogRecord,
    closings_by_delta,
    read_run_log,
    service_process,
)

PARENTS = 12
AGENTS = """
[agents.boss]
agents = ["helper"]
history = false

[agents.helper]
tools = ["calculator"]
history = false
"""


async def _count(settings: Settings, kind: EventType, producer: str | None = None) -> int:
    records = await read_run_log(settings)
    return sum(
        1
        for r in records
        if r.event.type is kind and (producer is None or r.event.producer == producer)
    )


def _check(records: list[LogRecord], parents: list[str]) -> None:
    by_run: dict[str, list[LogRecord]] = defaultdict(list)
    for record in records:
        assert record.event.run_id is not None
        by_run[record.event.run_id].append(record)
    uses = [r.event for r in records if isinstance(r.event.payload, ToolUse)]
    children = {
        child_run_id(u.run_id, u.payload.id)  # type: ignore[union-attr]
        for u in uses
        if u.run_id in parents
    }
    assert len(children) == PARENTS
    assert set(by_run) == {*parents, *children}
    for run_id, events in by_run.items():
        kinds = Counter(r.event.type for r in events)
        assert kinds[EventType.RUN_STARTED] == 1, f"run {run_id} started {kinds}"
        assert kinds[EventType.RUN_COMPLETED] == 1, f"run {run_id}: {kinds}"
        assert kinds[EventType.TOOL_RESULT] == kinds[EventType.TOOL_USE] == 1, kinds
        deltas, closings = closings_by_delta(events)
        assert set(closings) == set(deltas), f"run {run_id}: {closings} for {deltas}"
        assert set(closings.values()) == {1}, f"run {run_id} has a delta answered twice"
    started = [r.event for r in records if isinstance(r.event.payload, RunStarted)]
    assert sorted(e.payload.parent_run_id or "" for e in started) == sorted(  # type: ignore[union-attr]
        ["" for _ in parents] + [u.run_id or "" for u in uses if u.run_id in parents]
    )


@pytest.mark.parametrize("killed", ["tools", "orchestrator"])
async def test_kill_9_while_children_run(settings: Settings, tmp_path: Path, killed: str) -> None:
    path = tmp_path / "agents.toml"
    path.write_text(AGENTS)
    mine = settings.model_copy(update={"agents_file": path})
    other: contextlib.AbstractAsyncContextManager[object]
    if killed == "tools":
        first = service_process("tools", mine, instance_id="tools-a", tool_latency=1.5)
        second = service_process("tools", mine, instance_id="tools-a", max_records=20)
        other = orchestrator_service(mine, history=False)
        # Killed once children are running (their calculators take 1.5 s).
        kill_when = (EventType.TOOL_USE, PARENTS + PARENTS // 2, None)
    else:
        first = service_process("orchestrator", mine, instance_id="o-a", local_latency=0.3)
        second = service_process(
            "orchestrator", mine, instance_id="o-a", local_latency=0.3, max_records=20
        )
        other = tool_runner_service(mine)
        # Killed once some children have started and others not.
        kill_when = (EventType.RUN_STARTED, PARENTS + 2, None)
    async with other, Client(mine) as rw:
        try:
            await first.start()
            await first.wait_caught_up()
            handles = [
                await rw.run("boss", f"ask helper to what is {i} * 7 + 1?", session_id=f"k{i}")
                for i in range(PARENTS)
            ]
            kind, at_least, producer = kill_when

            async def far_enough() -> bool:
                return await _count(mine, kind, producer) >= at_least

            await assert_eventually(far_enough, timeout=60, interval=0.05)
            await first.kill9()
            assert await _count(mine, EventType.RUN_COMPLETED) < 2 * PARENTS, "killed too late"
            await second.start()
            outcomes = await asyncio.gather(*(h.wait(timeout=120) for h in handles))
        finally:
            await first.stop()
            await second.stop()
    for i, outcome in enumerate(outcomes):
        assert outcome.status is RunStatus.COMPLETED, outcome.events
        assert str(i * 7 + 1) in outcome.text
    _check(await read_run_log(mine), [h.run_id for h in handles])
