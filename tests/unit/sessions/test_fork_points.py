"""Where a fork may cut a run: never between a tool_use and all of its results."""

from __future__ import annotations

from dataclasses import dataclass

from runwire.contract.events import (
    AssistantText,
    Event,
    RunStarted,
    ToolResult,
    ToolUse,
    UserMessage,
)
from runwire.sessions.forks import fork_points


@dataclass(frozen=True)
class _At:
    offset: int
    event: Event


def _run(*payloads: object) -> list[_At]:
    # Offsets with gaps, as another run's records between them would leave.
    return [
        _At(10 + 3 * i, Event.create(p, run_id="r1", session_id="s1"))  # type: ignore[arg-type]
        for i, p in enumerate(payloads)
    ]


def test_two_parallel_calls_stay_open_until_both_results() -> None:
    records = _run(
        RunStarted(agent_id="a"),
        UserMessage(parts=["both?"]),
        ToolUse(id="t1", name="x"),
        ToolUse(id="t2", name="y"),
        ToolResult(tool_use_id="t2", content=2),
        ToolResult(tool_use_id="t1", content=1),
        AssistantText(text="done"),
    )
    points = fork_points("r1", records)
    assert [p.offset for p in points] == [10, 13, 16, 19, 22, 25, 28]
    assert [p.open_tool_calls for p in points] == [
        (),
        (),
        ("t1",),
        ("t1", "t2"),
        ("t1",),
        (),
        (),
    ]
    assert [p.whole for p in points] == [True, True, False, False, False, True, True]
    assert [p.turn_starts for p in points] == [0, 1, 1, 1, 1, 1, 1]


def test_a_record_the_ledger_refuses_keeps_the_point_before_it() -> None:
    records = _run(
        RunStarted(agent_id="a"),
        UserMessage(parts=["q"]),
        ToolResult(tool_use_id="nope", content=0),  # no such tool_use: refused
        AssistantText(text="a"),
    )
    points = fork_points("r1", records)
    assert [p.whole for p in points] == [True, True, True, True]
    assert points[2].turn_starts == points[1].turn_starts == 1
    assert [p.event_type for p in points] == [
        "run_started",
        "user_message",
        "tool_result",
        "assistant_text",
    ]
