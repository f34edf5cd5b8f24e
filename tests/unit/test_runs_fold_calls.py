"""The run-status fold over a run awaiting many tool calls: exact, and no search per event.

A hostile producer may give one run any number of calls. The fold looked each
new call up in the list of those awaited, and removed each result from it,
end to end: a batch cost its events times the calls awaited, so a run of
100,000 calls held the projector for minutes. Ids are counted as compared
(a str whose ``==`` counts) to show the work a batch does.
"""

from __future__ import annotations

from collections.abc import Sequence

from runwire.contract.events import (
    ApprovalDecided,
    ApprovalRequested,
    Event,
    EventPayload,
    RunStarted,
    RunStatus,
    RunStatusChanged,
    ToolResult,
    ToolUse,
)
from runwire.log.records import SourceRecord
from runwire.projections.runs.fold import RunRow, fold_batch

RUN = "run-many-calls"


class CountedId(str):
    """An id as loaded from the store, counting the comparisons made with it."""

    compared = 0

    def __eq__(self, other: object) -> bool:
        CountedId.compared += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def _records(payloads: Sequence[EventPayload], first: int) -> list[SourceRecord]:
    return [
        SourceRecord(
            "run-events",
            0,
            first + i,
            0,
            RUN.encode(),
            b"",
            (),
            Event.create(p, run_id=RUN, session_id="s"),
        )
        for i, p in enumerate(payloads)
    ]


def _call(i: int) -> str:
    return f"toolu_{i:06d}"


def test_a_batch_does_not_search_the_calls_the_run_awaits() -> None:
    rows: dict[str, RunRow] = {}
    fold_batch(rows, _records([RunStarted(agent_id="a")], 0))
    loaded = rows[RUN]
    # As loaded from Postgres: the run awaits 5,000 calls (and holds 5,000 for approval).
    loaded.pending_tool_uses = [CountedId(_call(i)) for i in range(5000)]
    loaded.awaiting_approval = [CountedId(_call(i)) for i in range(5000)]
    more: list[EventPayload] = [ToolUse(id=_call(i), name="t", input={}) for i in range(5000, 6000)]
    more += [ApprovalRequested(tool_use_id=_call(i), tool_name="t") for i in range(5000, 6000)]
    answers = [ToolResult(tool_use_id=_call(i), content="ok") for i in reversed(range(6000))]
    decisions = [
        ApprovalDecided(tool_use_id=_call(i), approved=True) for i in reversed(range(5500))
    ]
    CountedId.compared = 0
    out = fold_batch(rows, _records([*more, *answers, *decisions], 1))
    assert out.rejections == []
    # Each event costs a lookup or two, not a walk over what the run awaits.
    assert CountedId.compared < 40_000
    assert rows[RUN].pending_tool_uses == []
    assert rows[RUN].awaiting_approval == [_call(i) for i in range(5500, 6000)]
    assert rows[RUN].tool_call_count == 1000


def test_calls_are_awaited_in_the_order_made_and_a_repeat_is_refused() -> None:
    rows: dict[str, RunRow] = {}
    calls = [ToolUse(id=_call(i), name="t", input={}) for i in (3, 1, 2)]
    fold_batch(rows, _records([RunStarted(agent_id="a"), *calls], 0))
    assert rows[RUN].pending_tool_uses == [_call(3), _call(1), _call(2)]
    out = fold_batch(
        rows,
        _records(
            [
                ToolResult(tool_use_id=_call(1), content="ok"),
                ToolUse(id=_call(2), name="t", input={}),
                ToolResult(tool_use_id=_call(1), content="again"),
                ApprovalRequested(tool_use_id=_call(3), tool_name="t"),
                RunStatusChanged(status=RunStatus.AWAITING_TOOLS),
            ],
            4,
        ),
    )
    assert [r.reason for r in out.rejections] == ["duplicate_tool_use_id", "unknown_tool_use"]
    assert rows[RUN].pending_tool_uses == [_call(3), _call(2)]
    assert rows[RUN].awaiting_approval == [_call(3)]
    assert rows[RUN].phase == "awaiting_approval"
