"""Planner notes: what the orchestrator decided for a tool-using turn, and why.

Contract:
- :func:`with_planner_note` adds one ``planner_note`` event to an answer
  whose assistant message calls tools; other answers are returned as they
  are. The note goes right after the message's parts (before usage and the
  closing event), in the same atomic batch, so it is there exactly when the
  answer is.
- The note says what was decided (which tools, with which input, that the
  run now waits for their results), what it answers (the user's message or
  the results of earlier calls) and why (the model's stop reason and the
  visible text it gave with the calls). It is built from the answer alone:
  the same answer gives the same note, byte for byte, so a retried answer
  writes the same event.
- Its id is ``deterministic_event_id(run, delta, NOTE_SLOT)``, caused by the
  delta like the rest of the answer. Planner notes are for people: the
  ledger makes no message of them, so no provider payload carries them
  (the transcript cache, the history window and every adapter read
  messages); the transcript views show them.
"""

from __future__ import annotations

from collections.abc import Sequence

from runwire.contract import jsonvalues
from runwire.contract.events import Event, EventType, PlannerNote
from runwire.providers.base import ModelResponse
from runwire.services.run_context import RunContext

__all__ = ["NOTE_SLOT", "planner_note_text", "with_planner_note"]

NOTE_SLOT = 8
"""The note's index in ``deterministic_event_id(run, cause, index)`` (between the
fixed role slots and the assistant parts of :class:`~.answers.Slot`)."""

MAX_INPUT_CHARS = 200
MAX_REASON_CHARS = 500


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def planner_note_text(response: ModelResponse, answers: str) -> str:
    """The note for a tool-using ``response`` to a delta of kind ``answers``."""
    calls = response.tool_uses()
    listed = "; ".join(
        f"{c.name}({_cut(jsonvalues.dumps_text(c.input, sort_keys=True), MAX_INPUT_CHARS)})"
        for c in calls
    )
    what = "the user's message" if answers == "user_message" else "the results of earlier tools"
    said = response.message().text().strip()
    why = f"the model stopped with {response.stop_reason!r}"
    if said:
        why += f" and said: {_cut(said, MAX_REASON_CHARS)!r}"
    plural = "s" if len(calls) != 1 else ""
    return (
        f"Answering {what}, the model ({response.provider}/{response.model}) asked for "
        f"{len(calls)} tool call{plural}: {listed}. Decided: run them and wait for their "
        f"results before calling the model again. Why: {why}."
    )


def with_planner_note(
    context: RunContext,
    cause_id: str,
    response: ModelResponse,
    answer: Sequence[Event],
    *,
    answers: str = "user_message",
) -> list[Event]:
    """``answer`` with the planner note of a tool-using turn (see the module contract)."""
    out = list(answer)
    if not response.tool_uses():
        return out
    note = context.event(
        PlannerNote(text=planner_note_text(response, answers)),
        producer=answer[0].producer if answer else "runwire-orchestrator",
        causation_id=cause_id,
        index=NOTE_SLOT,
    )
    parts = {EventType.THINKING, EventType.ASSISTANT_TEXT, EventType.TOOL_USE}
    at = max((i + 1 for i, e in enumerate(out) if e.type in parts), default=0)
    out.insert(at, note)
    return out
