"""The events the orchestrator publishes for one delta, with deterministic ids.

Contract:
- Every event built here has ``causation_id`` = the delta's event id and
  ``event_id`` = ``deterministic_event_id(run, delta, slot)``: a retried or
  repeated answer to the same delta has the same ids, so consumers drop the
  copy and a second answer is recognisable.
- Slots are fixed per role, not per position in a batch, so the closing
  event of an answer gets the same id whether it is published with the
  assistant message or alone after a crash (:func:`closing_events`).
- An answer is: the assistant message's parts (thinking, text, tool_use, in
  that order), usage, then the closing — ``run_status_changed``
  (``awaiting_tools``) when the message calls tools, else ``run_completed``.
  A failure is ``run_failed``.
- A tool call that needs a person's approval (the agent's policy) gets an
  ``approval_requested`` event *before* the assistant message's parts, in
  the same batch: every reader knows the call is held before it sees the
  call. The closing then says ``awaiting_tools`` with reason
  ``awaiting_approval``. A denial is answered by an error ``tool_result``
  caused by the ``approval_decided`` event (:func:`denial_result`). Terminal statuses are only ever said by the
  terminal events (the run-status projection keeps a run's first ending, and
  ``run_failed`` carries the error).
"""

from __future__ import annotations

from collections.abc import Callable

from runwire.contract.events import (
    ApprovalRequested,
    ContextCompacted,
    ContextSeeded,
    Event,
    EventPayload,
    RunCompleted,
    RunFailed,
    RunPhase,
    RunStatus,
    RunStatusChanged,
    ToolResult,
    Usage,
)
from runwire.contract.limits import storable
from runwire.providers.base import ModelResponse
from runwire.services.run_context import RunContext
from runwire.transcript.ledger import payloads_for_message

__all__ = [
    "PRODUCER",
    "Slot",
    "acknowledgement",
    "answer_events",
    "closing_events",
    "context_compacted",
    "context_seeded",
    "denial_result",
    "failure_events",
]

PRODUCER = "runwire-orchestrator"
AWAITING_APPROVAL = "awaiting_approval"
"""The reason of the closing of an answer with tool calls held for approval."""
MAX_ERROR_CHARS = 4000


class Slot:
    """The index of each role in ``deterministic_event_id(run, cause, index)``."""

    ACKNOWLEDGE = 0
    USAGE = 1
    STATUS = 2
    TERMINAL = 3
    CONTEXT = 4
    COMPACTED = 6
    DENIAL = 12
    """(5 is the watchdog's failure, caused by a run's last event: a decision may be
    one; 8 the planner note, :mod:`~runwire.services.orchestrator.notes`.)"""
    PARTS = 16
    """Assistant parts take ``PARTS + i`` for the i-th part of the message."""
    APPROVALS = 1 << 20
    """Approval requests take ``APPROVALS + i`` for the i-th held tool call."""


def _event(context: RunContext, cause_id: str, slot: int, payload: EventPayload) -> Event:
    return context.event(payload, producer=PRODUCER, causation_id=cause_id, index=slot)


def acknowledgement(context: RunContext, cause_id: str, phase: RunPhase) -> Event:
    """``run_status_changed(running)``: the orchestrator took the delta on."""
    return _event(
        context, cause_id, Slot.ACKNOWLEDGE, RunStatusChanged(status=RunStatus.RUNNING, phase=phase)
    )


def context_seeded(context: RunContext, cause_id: str, payload: ContextSeeded) -> Event:
    """The record of the history a run's model calls are given (before its first call)."""
    return _event(context, cause_id, Slot.CONTEXT, payload)


def context_compacted(context: RunContext, cause_id: str, payload: ContextCompacted) -> Event:
    """The record of a summary that replaced older turns (with, before, ``context_seeded``)."""
    return _event(context, cause_id, Slot.COMPACTED, payload)


def answer_events(
    context: RunContext,
    cause_id: str,
    response: ModelResponse,
    needs_approval: Callable[[str], bool] | None = None,
) -> list[Event]:
    """The assistant message, usage and closing events of one model answer
    (with an approval request before it for each call ``needs_approval`` holds)."""
    held = [
        u for u in response.tool_uses() if needs_approval is not None and needs_approval(u.name)
    ]
    events = [
        _event(
            context,
            cause_id,
            Slot.APPROVALS + i,
            ApprovalRequested(tool_use_id=use.id, tool_name=use.name),
        )
        for i, use in enumerate(held)
    ]
    parts = payloads_for_message(response.message())
    events.extend(_event(context, cause_id, Slot.PARTS + i, p) for i, p in enumerate(parts))
    usage = response.usage
    events.append(
        _event(
            context,
            cause_id,
            Slot.USAGE,
            Usage(
                model=response.model,
                provider=response.provider,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                reasoning_tokens=usage.reasoning_tokens,
            ),
        )
    )
    events.extend(
        closing_events(
            context,
            cause_id,
            calls_tools=bool(response.tool_uses()),
            stop=response.stop_reason,
            held=bool(held),
        )
    )
    return events


def closing_events(
    context: RunContext,
    cause_id: str,
    *,
    calls_tools: bool,
    stop: str | None = None,
    held: bool = False,
) -> list[Event]:
    """What closes an answer: awaiting tools (``held``: some wait for approval), or the
    run's completion."""
    if calls_tools:
        return [
            _event(
                context,
                cause_id,
                Slot.STATUS,
                RunStatusChanged(
                    status=RunStatus.AWAITING_TOOLS,
                    phase=RunPhase.EXECUTING_TOOLS,
                    reason=AWAITING_APPROVAL if held else None,
                ),
            )
        ]
    return [_event(context, cause_id, Slot.TERMINAL, RunCompleted(stop_reason=stop))]


def denial_result(context: RunContext, decision_id: str, tool_use_id: str, message: str) -> Event:
    """The error ``tool_result`` that answers a denied tool call (caused by the decision)."""
    return _event(
        context,
        decision_id,
        Slot.DENIAL,
        ToolResult(tool_use_id=tool_use_id, content=storable(message), is_error=True),
    )


def failure_events(
    context: RunContext, cause_id: str, error_kind: str, message: str, *, retryable: bool = False
) -> list[Event]:
    """The run cannot go on: ``failed`` with a readable kind and message.

    Messages longer than :data:`MAX_ERROR_CHARS` are cut (a provider may echo
    a whole request back) and text no store can hold (NUL) is replaced, so the
    event can always be written and applied.
    """
    message = storable(message)
    if len(message) > MAX_ERROR_CHARS:
        message = message[: MAX_ERROR_CHARS - 1] + "…"
    return [
        _event(
            context,
            cause_id,
            Slot.TERMINAL,
            RunFailed(error_kind=error_kind, message=message, retryable=retryable),
        )
    ]
