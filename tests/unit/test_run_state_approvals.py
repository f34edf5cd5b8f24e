"""Approvals in the orchestrator's per-run fold and its answers (nothing running)."""

from __future__ import annotations

from runwire.contract.events import (
    ApprovalDecided,
    ApprovalRequested,
    EventType,
    RunStarted,
    RunStatus,
    RunStatusChanged,
    ToolResult,
    UserMessage,
)
from runwire.providers.base import ModelResponse
from runwire.services.orchestrator.answers import AWAITING_APPROVAL, answer_events, denial_result
from runwire.services.orchestrator.run_state import Answer, Deny
from runwire.services.run_context import RunContext
from runwire.transcript.messages import TextPart, ToolUsePart
from tests.unit.test_orchestrator_run_state import Log

CALLS = ModelResponse(
    parts=(
        TextPart(text="Let me."),
        ToolUsePart(id="tu-calc", name="calculator", input={"expression": "1+1"}),
        ToolUsePart(id="tu-clock", name="clock", input={}),
    ),
    stop_reason="tool_use",
    provider="local",
    model="m",
)


def asked() -> tuple[Log, RunContext]:
    log = Log()
    log.add(RunStarted(agent_id="a"))
    delta = log.add(UserMessage(parts=["1+1 and the time?"]))
    context = RunContext.of(log.events[0])
    log.extend(answer_events(context, delta.event_id, CALLS, lambda name: name == "calculator"))
    return log, context


def test_held_calls_are_announced_before_the_message_and_closed_with_the_reason() -> None:
    log, _ = asked()
    types = [e.type for e in log.events]
    assert types.index(EventType.APPROVAL_REQUESTED) < types.index(EventType.ASSISTANT_TEXT)
    requests = [e.payload for e in log.events if isinstance(e.payload, ApprovalRequested)]
    assert requests == [ApprovalRequested(tool_use_id="tu-calc", tool_name="calculator")]
    closing = log.events[-1].payload
    assert isinstance(closing, RunStatusChanged)
    assert closing.status is RunStatus.AWAITING_TOOLS
    assert closing.reason == AWAITING_APPROVAL
    state = log.state()
    assert state.awaiting_approval == {"tu-calc": "calculator"}
    assert state.next_action() is None


def test_a_denial_asks_for_one_error_result_and_the_first_decision_counts() -> None:
    log, context = asked()
    log.add(ToolResult(tool_use_id="tu-clock", content={"time": "now"}))
    no = log.add(ApprovalDecided(tool_use_id="tu-calc", approved=False, reason="r", decided_by="x"))
    log.add(ApprovalDecided(tool_use_id="tu-calc", approved=True))  # too late: changes nothing
    state = log.state()
    action = state.next_action()
    assert action == Deny(no.event_id, "tu-calc", "the call of calculator was denied by x: r")
    assert state.awaiting_approval == {}
    result = denial_result(context, no.event_id, "tu-calc", action.message)
    assert result.causation_id == no.event_id
    log.extend([result])
    after = log.state()
    # The denial's result completes the calls: the model is asked next.
    assert isinstance(after.next_action(), Answer)


def test_an_approval_leaves_the_call_to_the_tool_runner() -> None:
    log, _ = asked()
    log.add(ApprovalDecided(tool_use_id="tu-calc", approved=True))
    state = log.state()
    assert state.next_action() is None
    assert state.awaiting_approval == {}


def test_a_denial_after_the_call_was_answered_asks_for_nothing() -> None:
    log, _ = asked()
    log.add(ToolResult(tool_use_id="tu-calc", content=2))  # answered from outside
    log.add(ApprovalDecided(tool_use_id="tu-calc", approved=False))
    state = log.state()
    assert state.next_action() is None
