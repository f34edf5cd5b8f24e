"""The tool runner's fold over many calls that wait: an event looks at its own run's calls.

Calls held for a person's approval, or of a paused run, wait in the runner
for as long as nobody decides: a hostile producer may leave any number of
them. Every run's ending walked all the waiting calls of its partition, and
every batch that started one walked them again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from runwire.contract.events import (
    ApprovalDecided,
    ApprovalRequested,
    Event,
    EventPayload,
    RunCompleted,
    RunStatus,
    RunStatusChanged,
    ToolUse,
)
from runwire.log.inmem import InMemoryLog
from runwire.providers.base import ToolSpec
from runwire.services.tools.registry import Tool, ToolContext, ToolRegistry
from runwire.services.tools.runner import ToolRunner
from runwire.settings import Settings

WAITING = 2000


class Walked(OrderedDict[Any, Any]):
    """The partition's calls, counting the calls looked at by walking them all."""

    walked = 0

    def __iter__(self) -> Iterator[Any]:
        for key in super().__iter__():
            Walked.walked += 1
            yield key

    def items(self) -> Any:
        return [(k, self[k]) for k in self]

    def values(self) -> Any:
        return [self[k] for k in self]


async def _answer(tool_input: Any, context: ToolContext) -> str:
    return "ok"


def _runner() -> ToolRunner:
    spec = ToolSpec(name="t", description="a tool", input_schema={"type": "object"})
    runner = ToolRunner(
        Settings(), registry=ToolRegistry([Tool(spec, _answer)]), publisher=InMemoryLog()
    )
    runner.assigned([0])
    runner._partitions[0].calls = Walked()
    return runner


def _event(payload: EventPayload, run_id: str, cause: str | None = None) -> Event:
    return Event.create(payload, run_id=run_id, session_id="s", causation_id=cause)


def _held_calls(runner: ToolRunner) -> None:
    """``WAITING`` runs each with a call held for approval."""
    offset = 0
    for i in range(WAITING):
        run = f"held-{i}"
        for payload in (
            ApprovalRequested(tool_use_id=f"tu-{i}", tool_name="t"),
            ToolUse(id=f"tu-{i}", name="t", input={}),
        ):
            runner.apply(0, offset, _event(payload, run))
            offset += 1


async def test_an_ending_or_a_decision_looks_at_its_own_runs_calls_only() -> None:
    runner = _runner()
    _held_calls(runner)
    runner.caught_up(0)  # walks them once, as a partition caught up must
    Walked.walked = 0
    for i in range(WAITING):
        runner.apply(0, 10_000 + i, _event(RunCompleted(), f"other-{i}"))
        runner.batch_done()
    decided = _event(ApprovalDecided(tool_use_id="tu-7", approved=True), "held-7")
    runner.apply(0, 20_000, decided)
    runner.batch_done()
    assert Walked.walked < WAITING  # not once per event
    part = runner._partitions[0]
    assert len(part.calls) == WAITING
    assert part.calls[("held-7", "tu-7")].task is not None  # approved: started
    assert part.calls[("held-8", "tu-8")].task is None  # still held
    await runner.revoked([0])


async def test_a_resume_starts_the_paused_runs_calls_and_an_ending_drops_them() -> None:
    runner = _runner()
    pause = _event(RunStatusChanged(status=RunStatus.PAUSED), "r")
    runner.apply(0, 0, pause)
    runner.apply(0, 1, _event(ToolUse(id="tu-a", name="t", input={}), "r"))
    runner.apply(0, 2, _event(ToolUse(id="tu-b", name="t", input={}), "r"))
    runner.caught_up(0)
    part = runner._partitions[0]
    assert all(call.task is None for call in part.calls.values())
    runner.apply(0, 3, _event(RunStatusChanged(status=RunStatus.RUNNING), "r", pause.event_id))
    runner.batch_done()
    assert all(call.task is not None for call in part.calls.values())
    runner.apply(0, 4, _event(RunCompleted(), "r"))
    assert not part.calls
    await runner.revoked([0])
