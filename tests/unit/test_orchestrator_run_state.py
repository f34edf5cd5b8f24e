"""The orchestrator's per-run fold: deltas, answers, closings, limits (nothing running)."""

from __future__ import annotations

import pytest

from runwire.contract.events import (
    AssistantText,
    Event,
    EventPayload,
    RunCanceled,
    RunFailed,
    RunPhase,
    RunStarted,
    RunStatus,
    RunStatusChanged,
    Thinking,
    ToolResult,
    UserMessage,
)
from runwire.providers.base import ModelResponse, TokenUsage
from runwire.services.orchestrator.answers import (
    acknowledgement,
    answer_events,
    closing_events,
    failure_events,
)
from runwire.services.orchestrator.run_state import Answer, Close, Fail, RunState
from runwire.services.run_context import RunContext
from runwire.transcript.messages import TextPart, ThinkingPart, ToolUsePart

RUN = "run-1"


class Log:
    """A run's events with offsets, folded into a fresh state on demand."""

    def __init__(self, max_turns: int = 8) -> None:
        self.events: list[Event] = []
        self.max_turns = max_turns

    def add(self, payload: EventPayload, causation_id: str | None = None) -> Event:
        event = Event.create(payload, run_id=RUN, session_id="s", causation_id=causation_id)
        self.events.append(event)
        return event

    def extend(self, events: list[Event]) -> None:
        self.events.extend(events)

    def state(self) -> RunState:
        first = self.events[0]
        state = RunState(RunContext.of(first), 0, max_turns=self.max_turns)
        for offset, event in enumerate(self.events):
            state.apply(event, offset)
            # The cheap check the scheduler uses agrees with the action itself.
            assert state.wants_action() == (state.next_action() is not None)
        return state


def started() -> Log:
    log = Log()
    log.add(RunStarted(agent_id="a", labels={"tenant": "t"}))
    return log


def response(*parts: ThinkingPart | TextPart | ToolUsePart) -> ModelResponse:
    return ModelResponse(
        parts=parts, usage=TokenUsage(input_tokens=3, output_tokens=2), provider="local", model="m"
    )


CTX = RunContext(run_id=RUN, session_id="s")


def test_a_user_message_is_a_delta_answered_with_the_transcript() -> None:
    log = started()
    user = log.add(UserMessage(parts=["hi"]))
    action = log.state().next_action()
    assert isinstance(action, Answer)
    assert action.delta.event_id == user.event_id
    assert action.turn == 1
    assert action.acknowledge
    assert [m.role for m in action.messages] == ["user"]
    assert action.messages[0].text() == "hi"


def test_a_closed_answer_leaves_nothing_to_do_and_completes_the_run() -> None:
    log = started()
    user = log.add(UserMessage(parts=["hi"]))
    log.extend(answer_events(CTX, user.event_id, response(TextPart(text="hello"))))
    state = log.state()
    assert state.next_action() is None
    assert state.status is RunStatus.COMPLETED
    assert state.is_answered(user.event_id)
    assert state.model_calls == 1


def test_the_acknowledgement_is_not_an_answer() -> None:
    log = started()
    user = log.add(UserMessage(parts=["hi"]))
    log.extend([acknowledgement(CTX, user.event_id, RunPhase.PLANNING)])
    action = log.state().next_action()
    assert isinstance(action, Answer)
    assert not action.acknowledge  # already running


def test_tool_results_completing_the_calls_are_one_delta() -> None:
    log = started()
    user = log.add(UserMessage(parts=["1+1 and 2+2"]))
    log.extend(
        answer_events(
            CTX,
            user.event_id,
            response(
                ThinkingPart(text="t", signature="sig"),
                ToolUsePart(id="a", name="calculator", input={"expression": "1+1"}),
                ToolUsePart(id="b", name="calculator", input={"expression": "2+2"}),
            ),
        )
    )
    state = log.state()
    assert state.status is RunStatus.AWAITING_TOOLS
    assert state.next_action() is None
    log.add(ToolResult(tool_use_id="b", content=4))
    assert log.state().next_action() is None  # one result still missing
    last = log.add(ToolResult(tool_use_id="a", content=2))
    action = log.state().next_action()
    assert isinstance(action, Answer)
    assert action.delta.event_id == last.event_id
    assert action.delta.kind == "tool_results"
    assert action.turn == 2
    assert [m.role for m in action.messages] == ["user", "assistant", "user"]


def test_parts_without_their_closing_are_closed_not_answered_again() -> None:
    log = started()
    user = log.add(UserMessage(parts=["hi"]))
    events = answer_events(
        CTX, user.event_id, response(TextPart(text="x"), ToolUsePart(id="t", name="clock"))
    )
    log.extend(events[:-1])  # crash before the closing event
    action = log.state().next_action()
    assert action == Close(user.event_id, calls_tools=True)
    log.extend(closing_events(CTX, user.event_id, calls_tools=True))
    assert log.state().next_action() is None
    # the closing published again has the same ids as the first one
    assert closing_events(CTX, user.event_id, calls_tools=True)[0].event_id == events[-1].event_id


def test_an_answer_covers_earlier_unanswered_deltas() -> None:
    log = started()
    first = log.add(UserMessage(parts=["one"]))
    second = log.add(UserMessage(parts=["two"]))
    action = log.state().next_action()
    assert isinstance(action, Answer)
    assert action.delta.event_id == second.event_id
    assert [p.text for p in action.messages[-1].parts] == ["one", "two"]  # type: ignore[union-attr]
    log.extend(answer_events(CTX, second.event_id, response(TextPart(text="both"))))
    state = log.state()
    assert state.pending == ()
    assert not state.is_answered(first.event_id)  # covered, not answered itself
    assert state.next_action() is None


def test_user_text_while_busy_waits_for_our_answer_and_the_tool_results() -> None:
    log = started()
    first = log.add(UserMessage(parts=["one"]))
    state = log.state()
    state.expect(first.event_id)
    assert state.next_action() is None  # waiting to read our own answer
    log.add(UserMessage(parts=["two"]))
    log.extend(answer_events(CTX, first.event_id, response(ToolUsePart(id="c", name="clock"))))
    state = log.state()
    assert state.pending == ()  # "two" lies before the answer in the log
    assert state.next_action() is None  # the clock has not answered yet
    result = log.add(ToolResult(tool_use_id="c", content="noon"))
    action = log.state().next_action()
    assert isinstance(action, Answer)
    assert action.delta.event_id == result.event_id
    assert [m.role for m in action.messages] == ["user", "assistant", "user"]
    assert [p.text for p in action.messages[0].parts] == ["one", "two"]  # type: ignore[union-attr]


def test_user_text_while_tools_run_is_answered_with_the_results() -> None:
    log = started()
    first = log.add(UserMessage(parts=["one"]))
    log.extend(answer_events(CTX, first.event_id, response(ToolUsePart(id="c", name="clock"))))
    log.add(UserMessage(parts=["hurry"]))
    assert log.state().next_action() is None  # results still missing
    result = log.add(ToolResult(tool_use_id="c", content="noon"))
    action = log.state().next_action()
    assert isinstance(action, Answer)
    assert action.delta.event_id == result.event_id
    assert action.messages[-1].tool_results()[0].content == "noon"
    assert action.messages[-1].text() == "hurry"


def test_text_after_the_run_completed_is_ignored() -> None:
    log = started()
    first = log.add(UserMessage(parts=["one"]))
    log.extend(answer_events(CTX, first.event_id, response(TextPart(text="1"))))
    log.add(UserMessage(parts=["late"]))
    state = log.state()
    assert state.next_action() is None
    assert state.pending == ()


def test_the_turn_limit_fails_the_run_naming_the_setting() -> None:
    log = started()
    log.max_turns = 1
    user = log.add(UserMessage(parts=["go"]))
    log.extend(answer_events(CTX, user.event_id, response(ToolUsePart(id="c", name="clock"))))
    result = log.add(ToolResult(tool_use_id="c", content="now"))
    action = log.state().next_action()
    assert isinstance(action, Fail)
    assert action.cause_id == result.event_id
    assert action.error_kind == "turn_limit"
    assert "max_turns" in action.message
    log.extend(failure_events(CTX, action.cause_id, action.error_kind, action.message))
    state = log.state()
    assert state.status is RunStatus.FAILED
    assert state.error is not None
    assert state.error.error_kind == "turn_limit"
    assert state.next_action() is None


def test_a_broken_ledger_rule_fails_the_run_naming_rule_and_event() -> None:
    log = started()
    log.add(UserMessage(parts=["hi"]))
    bad = log.add(ToolResult(tool_use_id="nope", content=1))
    action = log.state().next_action()
    assert isinstance(action, Fail)
    assert action.cause_id == bad.event_id
    assert "unknown_tool_use" in action.message
    assert bad.event_id in action.message


def test_cancel_is_terminal_and_later_deltas_get_nothing() -> None:
    log = started()
    log.add(UserMessage(parts=["hi"]))
    log.add(RunCanceled(reason="user"))
    log.add(UserMessage(parts=["again"]))
    state = log.state()
    assert state.status is RunStatus.CANCELED
    assert state.next_action() is None


def test_paused_runs_wait_and_resume() -> None:
    log = started()
    log.add(UserMessage(parts=["hi"]))
    pause = log.add(RunStatusChanged(status=RunStatus.PAUSED))
    assert log.state().next_action() is None
    log.add(RunStatusChanged(status=RunStatus.PENDING, reason="something else"))
    assert log.state().next_action() is None  # only the resume of that pause lifts it
    log.add(
        RunStatusChanged(status=RunStatus.PENDING, reason="resumed"), causation_id=pause.event_id
    )
    assert isinstance(log.state().next_action(), Answer)


def test_an_answer_in_flight_when_paused_is_recorded_and_its_follow_up_waits() -> None:
    log = started()
    user = log.add(UserMessage(parts=["what time is it?"]))
    pause = log.add(RunStatusChanged(status=RunStatus.PAUSED))
    log.extend(answer_events(CTX, user.event_id, response(ToolUsePart(id="c", name="clock"))))
    log.add(ToolResult(tool_use_id="c", content="noon"))
    state = log.state()
    assert state.status is RunStatus.AWAITING_TOOLS  # the lifecycle went on
    assert state.paused_by == pause.event_id  # the pause did not
    assert state.next_action() is None
    log.add(RunStatusChanged(status=RunStatus.AWAITING_TOOLS), causation_id=pause.event_id)
    action = log.state().next_action()
    assert isinstance(action, Answer)
    assert action.delta.kind == "tool_results"


def test_duplicated_answer_events_change_nothing() -> None:
    log = started()
    user = log.add(UserMessage(parts=["1+1"]))
    events = answer_events(
        CTX,
        user.event_id,
        response(ThinkingPart(text="t", signature="s"), ToolUsePart(id="x", name="calculator")),
    )
    log.extend(events)
    log.extend(events)  # a retried publish
    state = log.state()
    assert state.model_calls == 1
    assert state.next_action() is None
    assert len(state.transcript.messages()) == 2


def test_answer_ids_are_deterministic_and_distinct() -> None:
    resp = response(
        ThinkingPart(text="t", signature="s"), TextPart(text="a"), ToolUsePart(id="x", name="c")
    )
    one = answer_events(CTX, "cause", resp)
    two = answer_events(CTX, "cause", resp)
    assert [e.event_id for e in one] == [e.event_id for e in two]
    assert len({e.event_id for e in one}) == len(one)
    assert all(e.causation_id == "cause" for e in one)
    assert [e.type.value for e in one] == [
        "thinking",
        "assistant_text",
        "tool_use",
        "usage",
        "run_status_changed",
    ]


@pytest.mark.parametrize("payload", [Thinking(text="t", signature="s"), AssistantText(text="a")])
def test_answer_parts_from_elsewhere_without_a_cause_answer_nothing(payload: EventPayload) -> None:
    log = started()
    log.add(UserMessage(parts=["hi"]))
    log.add(payload)
    assert isinstance(log.state().next_action(), Answer)


def test_seeded_assistant_parts_caused_by_run_started_are_no_answer() -> None:
    log = started()
    start = log.events[0]
    log.add(UserMessage(parts=["1+1?"]), causation_id=start.event_id)
    log.add(AssistantText(text="let me see"), causation_id=start.event_id)
    log.add(UserMessage(parts=["well?"]), causation_id=start.event_id)
    action = log.state().next_action()
    assert isinstance(action, Answer)
    assert action.turn == 1
    assert [m.role for m in action.messages] == ["user", "assistant", "user"]


def test_a_failure_message_holding_nul_is_recorded_not_refused() -> None:
    # A provider's error text may echo anything; the run must still fail readably.
    events = failure_events(CTX, CTX.run_id, "provider_error", "bad \x00 byte " + "x" * 10_000)
    payload = events[0].payload
    assert isinstance(payload, RunFailed)
    assert "\x00" not in payload.message
    assert payload.message.startswith("bad \ufffd byte")


def test_an_id_reused_with_another_body_fails_the_run_as_every_reader_refuses_it() -> None:
    log = started()
    first = log.add(UserMessage(parts=["hi"]))
    # A producer re-sends the id with other text: never a second question.
    log.extend([first.model_copy(update={"payload": UserMessage(parts=["other"])})])
    action = log.state().next_action()
    assert isinstance(action, Fail)
    assert action.cause_id == first.event_id
    assert "conflicting_duplicate_event" in action.message


def test_a_lifecycle_id_reused_with_another_body_is_refused_too() -> None:
    log = started()
    pause = log.add(RunStatusChanged(status=RunStatus.PAUSED))
    log.extend([pause.model_copy(update={"payload": RunStatusChanged(status=RunStatus.RUNNING)})])
    state = log.state()
    assert state.paused_by == pause.event_id, "the copy does not resume the run"
    assert state.next_action() is None
