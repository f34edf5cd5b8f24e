"""One run's state, folded from its events in log order, and what to do next.

Contract:
- :meth:`RunState.apply` folds one event of the run. It does no I/O and is
  deterministic: the same events in the same order give the same state and
  the same :meth:`RunState.next_action`, in every process. That is what lets
  a restarted orchestrator rebuild everything from the log.
- A *delta* is an event that asks for a model call: a ``user_message``, or
  the ``tool_result`` that completes the tool_uses of the last assistant
  message.
- The *answer* to delta D is made of events whose ``causation_id`` is D's
  ``event_id`` (assistant parts caused by anything else, e.g. history a
  client seeded with its ``run_started``, are transcript, not answers): the assistant message's parts (thinking, text, tool_use) and
  usage, then one *closing* event — ``run_status_changed(awaiting_tools)``
  when the message calls tools, ``run_completed`` when it does not, or
  ``run_failed`` when the run cannot go on. A ``run_status_changed(running)``
  caused by D only acknowledges it; it is not an answer.
- An answer answers every delta before it in the log: user text sent while
  the model was busy lands before the answer in the transcript (log order is
  the canonical order), so it counts as answered.
- :meth:`RunState.next_action` is ``None`` (nothing to do: waiting for the
  log, paused or terminal), :class:`Close` (the parts of an answer are in the
  log but its closing event is not, e.g. after a crash between the two:
  publish the closing only, never call the model again), :class:`Fail` (an
  event broke a ledger rule, or the turn limit is reached) or :class:`Answer`
  (call the model with the transcript as folded; the cause is the newest
  delta without an answer).
- No model call is made while tool_uses of the last assistant message still
  wait for results; user text sent meanwhile is answered with the results.
- Terminal runs (completed, failed, canceled) never get an action again:
  one run answers one user turn, text sent after it ended is ignored.
- Pause is a flag beside the lifecycle status: ``run_status_changed(paused)``
  sets it, and only a status change *caused by that pause event* (the
  resume) or a terminal event clears it. While paused no action is given;
  an answer already in flight is still recorded (its closing moves
  ``status``), its follow-up waits for the resume.
  Paused runs get none until a status change resumes them.
- Approvals: ``approval_requested`` holds a tool call; the first
  ``approval_decided`` for it decides (later ones change nothing). A denial
  of a call still without a result gives :class:`Deny` (publish the error
  tool_result the model reads, caused by the decision), before any other
  action but a :class:`Close`.
- :meth:`RunState.expect` records an answer the service has published but not
  read back yet: no action is given until it is read, so the next model call
  always sees the previous answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from runwire.contract.events import (
    TERMINAL_EVENTS,
    ApprovalDecided,
    ApprovalRequested,
    Event,
    EventType,
    RunFailed,
    RunStatus,
    RunStatusChanged,
    ToolResult,
)
from runwire.services.run_context import RunContext
from runwire.transcript.errors import LedgerError
from runwire.transcript.ledger import TranscriptBuilder
from runwire.transcript.messages import Message

__all__ = [
    "TERMINAL_STATUSES",
    "Action",
    "Answer",
    "Close",
    "Delta",
    "Deny",
    "Fail",
    "RunContext",
    "RunState",
]

TERMINAL_STATUSES = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED})

_ANSWER_PARTS = frozenset(
    {EventType.THINKING, EventType.ASSISTANT_TEXT, EventType.TOOL_USE, EventType.USAGE}
)


@dataclass(frozen=True)
class Delta:
    """An event that asks for a model call."""

    event_id: str
    offset: int
    kind: str  # "user_message" | "tool_results"


@dataclass(frozen=True)
class Answer:
    """Call the model on ``messages`` and publish its answer, caused by ``delta``.

    ``turn`` is the number of this model call in the run (1-based);
    ``acknowledge`` says whether the run must first be marked ``running``.
    """

    delta: Delta
    messages: tuple[Message, ...]
    turn: int
    acknowledge: bool


@dataclass(frozen=True)
class Close:
    """Publish only the closing event of an answer whose parts are in the log."""

    cause_id: str
    calls_tools: bool


@dataclass(frozen=True)
class Fail:
    """Fail the run with ``error_kind`` / ``message``, caused by event ``cause_id``."""

    cause_id: str
    error_kind: str
    message: str


@dataclass(frozen=True)
class Deny:
    """Answer denied tool call ``tool_use_id`` with an error result, caused by ``cause_id``
    (the ``approval_decided`` event)."""

    cause_id: str
    tool_use_id: str
    message: str


Action = Answer | Close | Fail | Deny


class RunState:
    """Everything the orchestrator knows about one run; see the module contract."""

    def __init__(self, context: RunContext, first_offset: int, *, max_turns: int) -> None:
        self.context = context
        self.first_offset = first_offset
        self.max_turns = max_turns
        self.status = RunStatus.PENDING
        self.transcript = TranscriptBuilder(context.run_id)
        self.model_calls = 0
        """Answers with assistant parts seen in the log (the turn counter)."""
        self.error: RunFailed | None = None
        self.seeded: Event | None = None
        """The run's first ``context_seeded`` event: the history its model calls get."""
        self.compacted: Event | None = None
        """The run's first ``context_compacted`` event: the summary that history starts with."""
        self.paused_by: str | None = None
        """The ``run_status_changed(paused)`` event in force, if the run is paused."""
        self._pending: list[Delta] = []
        self._deltas: set[str] = set()
        """Ids of every delta seen: only events caused by one of them are answers."""
        self._parts_seen: dict[str, bool] = {}
        """Cause id -> whether that answer's message calls tools, for answers not closed."""
        self._closed: set[str] = set()
        self._expected: set[str] = set()
        self._broken: Fail | None = None
        self.awaiting_approval: dict[str, str] = {}
        """Tool call id -> its tool's name, for held calls without a decision."""
        self._decided: set[str] = set()
        self._answered_calls: set[str] = set()
        """Tool call ids of held calls whose result is in the log."""
        self._denials: dict[str, Deny] = {}
        """Denied tool calls whose error result is not in the log yet."""

    # -- queries ---------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self.context.run_id

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def pending(self) -> tuple[Delta, ...]:
        """Deltas without an answer in the log, oldest first."""
        return tuple(self._pending)

    def is_answered(self, cause_id: str) -> bool:
        """True when the log holds a closed answer caused by ``cause_id``."""
        return cause_id in self._closed

    # -- the fold --------------------------------------------------------------

    def apply(self, event: Event, offset: int) -> None:
        """Fold one event of this run (read at ``offset``) into the state."""
        if event.run_id != self.run_id:
            raise ValueError(f"event of run {event.run_id} fed to the state of run {self.run_id}")
        payload = event.payload
        kind = event.type
        cause = event.causation_id
        # Every event goes through the builder first: it drops repeats and refuses
        # an id reused with another body, as every read model does.
        try:
            changed = self.transcript.apply(event)
        except LedgerError as e:
            if self._broken is None and not self.terminal:
                self._broken = Fail(event.event_id, "transcript_rule", str(e))
            return
        if not changed:
            return
        if kind in TERMINAL_EVENTS:
            self.status = TERMINAL_EVENTS[kind]
            if isinstance(payload, RunFailed):
                self.error = payload
            if cause in self._deltas:
                self._close(cause)
            self._pending.clear()
            self.paused_by = None
            return
        if isinstance(payload, RunStatusChanged):
            if payload.status is RunStatus.PAUSED:
                if not self.terminal:
                    self.paused_by = event.event_id
                return
            if self.paused_by is not None and cause == self.paused_by:
                self.paused_by = None  # the resume names the pause it lifts
            if not self.terminal:
                self.status = payload.status
            if cause in self._deltas and payload.status is RunStatus.AWAITING_TOOLS:
                self._close(cause)
            return
        if self.terminal:
            return  # late events of a finished run change nothing the orchestrator uses
        if kind is EventType.CONTEXT_SEEDED:
            if self.seeded is None:
                self.seeded = event
            return
        if kind is EventType.CONTEXT_COMPACTED:
            if self.compacted is None:
                self.compacted = event
            return
        if isinstance(payload, ApprovalRequested):
            if payload.tool_use_id not in self._decided:
                self.awaiting_approval[payload.tool_use_id] = payload.tool_name
            return
        if isinstance(payload, ApprovalDecided):
            self._decide(event.event_id, payload)
            return
        if isinstance(payload, ToolResult):
            if (
                payload.tool_use_id in self._decided
                or payload.tool_use_id in self.awaiting_approval
            ):
                self._answered_calls.add(payload.tool_use_id)
            self._denials.pop(payload.tool_use_id, None)
            self.awaiting_approval.pop(payload.tool_use_id, None)
            if cause in self._expected:
                self._expected.discard(cause)  # our denial's result, read back
        if cause in self._deltas and kind in _ANSWER_PARTS:
            assert cause is not None
            self._answer_parts(cause, calls_tools=kind is EventType.TOOL_USE)
        if kind is EventType.USER_MESSAGE:
            self._add_delta(Delta(event.event_id, offset, "user_message"))
        elif kind is EventType.TOOL_RESULT and not self.transcript.awaits_tool_results:
            self._add_delta(Delta(event.event_id, offset, "tool_results"))

    def _decide(self, event_id: str, decision: ApprovalDecided) -> None:
        tool_use_id = decision.tool_use_id
        name = self.awaiting_approval.pop(tool_use_id, None)
        if name is None or tool_use_id in self._decided:
            return  # not held, or decided before: the first decision counts
        self._decided.add(tool_use_id)
        if not decision.approved and tool_use_id not in self._answered_calls:
            who = f" by {decision.decided_by}" if decision.decided_by else ""
            why = f": {decision.reason}" if decision.reason else ""
            self._denials[tool_use_id] = Deny(
                event_id, tool_use_id, f"the call of {name} was denied{who}{why}"
            )

    def _add_delta(self, delta: Delta) -> None:
        self._pending.append(delta)
        self._deltas.add(delta.event_id)

    def _answer_parts(self, cause: str, *, calls_tools: bool) -> None:
        if cause in self._closed:
            return
        if cause not in self._parts_seen:
            self.model_calls += 1
            self._parts_seen[cause] = False
            self._answered(cause)
        if calls_tools:
            self._parts_seen[cause] = True

    def _close(self, cause: str) -> None:
        self._answered(cause)
        self._parts_seen.pop(cause, None)
        self._closed.add(cause)
        self._expected.discard(cause)

    def _answered(self, cause: str) -> None:
        """An answer is in the log: every delta before it in the log is answered.

        Deltas read between the cause and its answer are covered too: the
        ledger places their user text before the answer, so the transcript
        says the answer came after them.
        """
        del cause
        self._pending.clear()

    # -- what next -------------------------------------------------------------

    def expect(self, cause_id: str) -> None:
        """The service published the closed answer to ``cause_id``; wait to read it."""
        if cause_id not in self._closed:
            self._expected.add(cause_id)

    def unexpect(self, cause_id: str) -> None:
        """The answer to ``cause_id`` could not be published after all."""
        self._expected.discard(cause_id)

    def wants_action(self) -> bool:
        """Whether :meth:`next_action` would give an action (cheap: builds nothing)."""
        if self.terminal or self.paused_by is not None or self._expected:
            return False
        if self._parts_seen or self._broken is not None or self._denials:
            return True
        return bool(self._pending) and not self.transcript.awaits_tool_results

    def next_action(self) -> Action | None:
        """What the orchestrator should do now; see the module contract."""
        if not self.wants_action():
            return None
        if self._parts_seen:
            cause, calls_tools = next(iter(self._parts_seen.items()))
            return Close(cause, calls_tools)
        if self._broken is not None:
            return self._broken
        if self._denials:
            return next(iter(self._denials.values()))
        delta = self._pending[-1]
        if self.model_calls >= self.max_turns:
            return Fail(
                delta.event_id,
                "turn_limit",
                f"run {self.run_id} reached its turn limit of {self.max_turns} model calls "
                "(setting max_turns, RUNWIRE_MAX_TURNS)",
            )
        return Answer(
            delta=delta,
            messages=tuple(self.transcript.messages()),
            turn=self.model_calls + 1,
            acknowledge=self.status is not RunStatus.RUNNING,
        )
