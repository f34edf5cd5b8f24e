"""The watchdog's verdict on a stalled run: kind and readable message (nothing running)."""

from __future__ import annotations

from datetime import timedelta

from runwire.contract.codec import default_codec
from runwire.contract.events import ApprovalRequested, Event, RunFailed, RunStarted, UserMessage
from runwire.contract.limits import MAX_ID_CHARS
from runwire.projections.runs.fold import RunRow
from runwire.providers.base import ModelResponse, TokenUsage
from runwire.services.orchestrator.answers import answer_events
from runwire.services.orchestrator.run_state import RunState
from runwire.services.orchestrator.watchdog import failure_for
from runwire.services.run_context import RunContext
from runwire.settings import Settings
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


def _awaiting_hostile_calls() -> tuple[RunRow, RunState, Event]:
    """A run awaiting tools whose log a hostile producer filled: 5,000 calls with
    the longest ids and twelve held ones named with 100,000 characters each."""
    events = _asked()
    tool = ToolUsePart(id="tu-1", name="calculator", input={"expression": "1+1"})
    answer = ModelResponse(
        parts=(tool,), usage=TokenUsage(input_tokens=1, output_tokens=1), provider="p", model="m"
    )
    events += answer_events(CTX, events[-1].event_id, answer, lambda name: True)
    events += [
        Event.create(
            ApprovalRequested(tool_use_id=f"held-{i}", tool_name=str(i % 10) * 100_000),
            run_id=RUN,
            session_id="s",
        )
        for i in range(12)
    ]
    row, state = _fold(events, "awaiting_tools")
    row.pending_tool_uses = [f"{i:05d}" + "x" * (MAX_ID_CHARS - 5) for i in range(5000)]
    return row, state, events[-1]


def test_a_failure_names_a_few_calls_and_counts_the_rest_whatever_the_log_holds() -> None:
    # Every call named would make a failure over max_event_bytes: never
    # publishable, it stopped each sweep at this run, and no run after it failed.
    row, state, last = _awaiting_hostile_calls()
    now = row.updated_at + timedelta(seconds=5)
    held = failure_for(row, state, last, now)
    assert held.error_kind == "approval_timeout"
    assert "tu-1 (calculator)" in held.message
    assert "held-0 (0000" in held.message
    assert "and 3 more" in held.message
    state.awaiting_approval.clear()
    waiting = failure_for(row, state, last, now)
    assert waiting.error_kind == "awaiting_tools_timeout"
    assert f"pending tool calls 00000{'x' * 195}, 00001" in waiting.message
    assert "and 4990 more" in waiting.message
    for stall in (held, waiting):
        assert len(stall.message) < 4000
        event = RunContext.of(last).event(
            RunFailed(error_kind=stall.error_kind, message=stall.message, retryable=True),
            producer="runwire-watchdog",
            causation_id=last.event_id,
            index=5,
        )
        assert len(default_codec().encode(event)) < Settings().max_event_bytes
