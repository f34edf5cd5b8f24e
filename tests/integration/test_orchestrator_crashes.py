"""kill -9 of the orchestrator or the tool runner in the middle of 50 concurrent runs.

After a restart every run completes, every delta has exactly one answer and
every tool_use exactly one result — counting records, not distinct ids, so a
second answer with the same deterministic ids would be caught too.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict

from runwire.client import Client, RunHandle
from runwire.contract.events import EventType, RunStatus
from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.services.process import ServiceProcess
from runwire.services.tools.wiring import tool_runner_service
from runwire.settings import Settings
from tests.helpers import assert_eventually
from tests.integration.orchestration_support import (
    LogRecord,
    closings_by_delta,
    duplicated_ids,
    read_run_log,
    service_process,
)

RUNS = 50


async def _start_runs(rw: Client) -> list[tuple[RunHandle, int]]:
    handles = []
    for i in range(RUNS):
        handle = await rw.run("helper", f"what is {i} * 7 + 1?", session_id=f"crash-{i % 5}")
        handles.append((handle, i * 7 + 1))
    return handles


async def _count(settings: Settings, kind: EventType) -> int:
    return sum(1 for r in await read_run_log(settings) if r.event.type is kind)


def _check_answers(records: list[LogRecord]) -> None:
    """Each delta (user message, completing tool result) has exactly one closing record."""
    by_run: dict[str, list[LogRecord]] = defaultdict(list)
    for record in records:
        assert record.event.run_id is not None
        by_run[record.event.run_id].append(record)
    assert len(by_run) == RUNS
    for run_id, events in by_run.items():
        deltas, closings = closings_by_delta(events)
        assert set(closings) == set(deltas), f"run {run_id}: {closings} for {deltas}"
        assert set(closings.values()) == {1}, f"run {run_id} has a delta answered twice"
        kinds = Counter(r.event.type for r in events)
        assert kinds[EventType.RUN_COMPLETED] == 1
        assert kinds[EventType.TOOL_RESULT] == kinds[EventType.TOOL_USE] == 1


async def _crash_and_restart(
    settings: Settings,
    rw: Client,
    first: ServiceProcess,
    second: ServiceProcess,
    *,
    kill_when: tuple[EventType, int],
    not_all_done: EventType,
) -> list[LogRecord]:
    """Start ``first``, start the runs, kill -9 it once ``kill_when`` holds, start
    ``second``; every run must complete with the right answer. Returns the log."""
    try:
        await first.start()
        await first.wait_caught_up()
        handles = await _start_runs(rw)
        kind, at_least = kill_when
        await assert_eventually(lambda: _some(settings, kind, at_least), timeout=30, interval=0.02)
        await first.kill9()
        done_at_kill = await _count(settings, not_all_done)
        assert done_at_kill < RUNS, "the kill came too late to test anything"
        await second.start()
        outcomes = await asyncio.gather(*(h.wait(timeout=90) for h, _ in handles))
    finally:
        await first.stop()
        await second.stop()
    for outcome, (_, expected) in zip(outcomes, handles, strict=True):
        assert outcome.status is RunStatus.COMPLETED, outcome.events
        assert str(expected) in outcome.text
    return await read_run_log(settings)


async def test_kill_9_of_the_orchestrator_mid_flight(settings: Settings) -> None:
    first = service_process("orchestrator", settings, instance_id="orch-a", local_latency=0.3)
    # The restarted instance catches up in small fetches, so acting on a run
    # before its answer has been read back would show as a second answer.
    second = service_process(
        "orchestrator", settings, instance_id="orch-a", local_latency=0.3, max_records=20
    )
    async with tool_runner_service(settings), Client(settings) as rw:
        # Killed once some runs are past their first answer and others are not.
        records = await _crash_and_restart(
            settings,
            rw,
            first,
            second,
            kill_when=(EventType.TOOL_RESULT, 1),
            not_all_done=EventType.RUN_COMPLETED,
        )
    assert duplicated_ids(records, "runwire-orchestrator") == {}
    _check_answers(records)


async def test_kill_9_of_the_tool_runner_mid_flight(settings: Settings) -> None:
    first = service_process("tools", settings, instance_id="tools-a", tool_latency=2.0)
    second = service_process("tools", settings, instance_id="tools-a", max_records=20)
    async with orchestrator_service(settings, history=False), Client(settings) as rw:
        # Killed while the calls run (each takes 2 s).
        records = await _crash_and_restart(
            settings,
            rw,
            first,
            second,
            kill_when=(EventType.TOOL_USE, RUNS),
            not_all_done=EventType.TOOL_RESULT,
        )
    assert duplicated_ids(records, "runwire-tools") == {}
    results = Counter(
        r.event.causation_id for r in records if r.event.type is EventType.TOOL_RESULT
    )
    uses = {r.event.event_id for r in records if r.event.type is EventType.TOOL_USE}
    assert set(results) == uses
    assert set(results.values()) == {1}
    _check_answers(records)


async def _some(settings: Settings, kind: EventType, at_least: int = 1) -> bool:
    return await _count(settings, kind) >= at_least
