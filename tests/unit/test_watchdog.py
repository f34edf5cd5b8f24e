"""The watchdog's verdict on a stalled run: kind and readable message (nothing running)."""

from __future__ import annotations

from datetime import timedelta

from runwire.contract.events import Event, RunStarted, UserMessage
from runwire.projections.runs.fold import RunRow
from runwire.providers.base import ModelResponse, TokenUsage
from runwire.services.orchestrator.answers import answer_events
from runwire.services.orchestrator.run_state import RunState
from runwire.services.orchestrator.watchdog import failure_for
from runwire.services.run_context import RunContext
from runwire.transcript.messages import ToolUsePart

RUN = "run-w"
CTX = RunContext(run_id=RUN, session_id="s")


def _fold(events: list[Event], status: str) -> tuple[RunRow, RunState]:
    row = RunRow.new(events[0], 0, 0)
    row.status = status
    row.updated_at = events[-1].occurred_at
    row.last_offset = len(events) - 1
    state = RunState(RunContext.of(events[0]), 0, max_turns=8)
    for offset, event in enumerate(events):
        state.apply(event, offset)
    return row, state


def _asked() -> list[Event]:
    return [
        Event.create(RunStarted(agent_id="a"), run_id=RUN, session_id="s"),
        Event.create(UserMessage(parts=["hello?"]), run_id=RUN, session_id="s"),
    ]


def test_an_unanswered_delta_is_owner_lost_saying_how_long_and_since_what() -> None:
    events = _asked()
    row, state = _fold(events, "pending")
    stall = failure_for(row, state, events[-1], row.updated_at + timedelta(seconds=930))
    assert stall.error_kind == "owner_lost"
    assert RUN in stall.message
    assert "no event for 930s" in stall.message
    assert f"user_message {events[-1].event_id}" in stall.message
    assert "no orchestrator answered" in stall.message


def test_a_run_with_nothing_to_answer_is_stalled() -> None:
    events = _asked()[:1]  # started, never given a message
    row, state = _fold(events, "pending")
    stall = failure_for(row, state, events[-1], row.updated_at + timedelta(seconds=60))
    assert stall.error_kind == "stalled"
    assert "made no progress while pending" in stall.message


def test_a_tool_wait_names_the_pending_calls() -> None:
    events = _asked()
    tool = ToolUsePart(id="tu-1", name="calculator", input={"expression": "1+1"})
    answer = ModelResponse(
        parts=(tool,), usage=TokenUsage(input_tokens=1, output_tokens=1), provider="p", model="m"
    )
    events += answer_events(CTX, events[-1].event_id, answer)
    row, state = _fold(events, "awaiting_tools")
    row.pending_tool_uses = ["tu-1"]
    stall = failure_for(row, state, events[-1], row.updated_at + timedelta(seconds=5))
    assert stall.error_kind == "awaiting_tools_timeout"
    assert "pending tool calls tu-1" in stall.message
