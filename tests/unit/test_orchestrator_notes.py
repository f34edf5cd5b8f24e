"""Planner notes: a tool-using turn records what was decided and why, and no model sees it.

Nothing running: the orchestrator is fed a run's events through its fold
interface, the in-memory log stands in for the publisher, and the local
model is wrapped to keep every request it is given.
"""

from __future__ import annotations

from typing import Any

from runwire.contract.events import (
    Event,
    EventType,
    PlannerNote,
    RunStarted,
    ToolResult,
    ToolUse,
    UserMessage,
)
from runwire.log.inmem import InMemoryLog
from runwire.providers.base import ModelRequest, ModelResponse, TokenUsage
from runwire.providers.local import LocalModel
from runwire.services.orchestrator.notes import NOTE_SLOT, planner_note_text
from runwire.services.orchestrator.service import Orchestrator
from runwire.services.orchestrator.wiring import default_agents
from runwire.settings import Settings
from runwire.transcript.ledger import build_messages_from_events
from runwire.transcript.messages import TextPart, ToolUsePart
from tests.helpers import assert_eventually


class Recording(LocalModel):
    """The local model, keeping the requests it answered."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[ModelRequest] = []

    async def complete(self, request: ModelRequest, **kwargs: Any) -> ModelResponse:
        self.requests.append(request)
        return await super().complete(request, **kwargs)


def ended(log: InMemoryLog) -> bool:
    return any(e.type is EventType.RUN_COMPLETED for e in log.events)


async def test_a_tool_using_turn_has_a_note_that_no_model_sees() -> None:
    log = InMemoryLog()
    model = Recording()
    run: list[Event] = []  # the run's partition as the orchestrator reads it

    def feed(*events: Event) -> None:
        """Append to the run, and hand the orchestrator what it has not read yet."""
        written = events or tuple(log.events[len([e for e in run if e.producer != "t"]) :])
        for event in written:
            orchestrator.apply(0, len(run), event)
            run.append(event)
        orchestrator.batch_done()

    def written(kind: EventType) -> list[Event]:
        return [e for e in log.events if e.type is kind]

    async with model:
        orchestrator = Orchestrator(
            Settings(), provider=model, publisher=log, agents=default_agents()
        )
        orchestrator.assigned([0])
        feed(
            Event.create(RunStarted(agent_id="a"), run_id="r1", session_id="s", producer="t"),
            Event.create(
                UserMessage(parts=["what is 12 * (3 + 4)?"]),
                run_id="r1",
                session_id="s",
                producer="t",
            ),
        )
        orchestrator.caught_up(0)
        await assert_eventually(lambda: written(EventType.TOOL_USE), timeout=5)
        await assert_eventually(lambda: written(EventType.RUN_STATUS_CHANGED)[-1:], timeout=5)
        feed()
        call = written(EventType.TOOL_USE)[0].payload
        assert isinstance(call, ToolUse)
        feed(
            Event.create(
                ToolResult(tool_use_id=call.id, content={"value": 84}),
                run_id="r1",
                session_id="s",
                producer="t",
            )
        )
        await assert_eventually(lambda: written(EventType.RUN_COMPLETED), timeout=5)
        feed()
        await orchestrator.revoked([0])

    notes = [e for e in log.events if e.type is EventType.PLANNER_NOTE]
    assert len(notes) == 1, [e.type for e in log.events]
    note = notes[0]
    assert isinstance(note.payload, PlannerNote)
    assert "calculator" in note.payload.text
    assert "12 * (3 + 4)" in note.payload.text
    assert "user's message" in note.payload.text
    # Caused by the delta, in the answer's batch right after the message's parts.
    first_answer = [e for e in log.events if e.causation_id == note.causation_id]
    kinds = [e.type for e in first_answer]
    assert kinds.index(EventType.PLANNER_NOTE) == kinds.index(EventType.TOOL_USE) + 1
    assert note.causation_id == run[1].event_id
    # The final answer (no tools) has no note, and no model request ever carried one.
    assert len(model.requests) == 2
    for request in model.requests:
        assert note.payload.text not in request.model_dump_json()
    assert all(
        note.payload.text not in m.model_dump_json() for m in build_messages_from_events(run)
    )


def test_the_note_is_the_same_for_the_same_answer() -> None:
    assert NOTE_SLOT not in range(16, 1 << 16)  # never an assistant part's slot
    response = ModelResponse(
        parts=(TextPart(text="Let me check."), ToolUsePart(id="t1", name="clock", input={})),
        usage=TokenUsage(),
        stop_reason="tool_use",
        provider="local",
        model="det-1",
    )
    text = planner_note_text(response, "tool_results")
    assert text == planner_note_text(response, "tool_results")
    assert "clock({})" in text
    assert "Let me check." in text
    assert "earlier tools" in text
