"""How messages added to a session become run events (pure: no I/O).

The log is keyed by run, so every message of a session belongs to a run.
The rules, the same for every backend:

- **One run per turn.** A turn starts with a user message that carries text
  and no tool results (as :func:`runwire.transcript.turns.starts_turn`
  counts turns). Such a message opens a new run, unless the session's latest
  run is a *recorded* run whose last message is a user message (then it joins
  that message: consecutive user text is one user message).
- Tool results go to the session's latest run: they answer its tool calls
  (whoever made them, the orchestrator included).
- Assistant messages go to the latest run when it is a recorded one, else
  they open a recorded run of their own.
- One ``add_messages`` call is one atomic batch in one run (the run its first
  message picks); its later messages follow the ledger in that run.
- A recorded run is one turn: its ``turn_id`` is its run id, on every event
  written into it (tool results written into another run carry none: they
  belong to that run's turn).
- Runs written here are *recorded* runs: ``run_started`` labelled
  ``runwire.source=session`` and at once ``run_status_changed(paused)``, so
  neither the orchestrator nor the tool runner acts on their messages.
- Runs started before the session's last ``clear()`` are out of reach: the
  next message opens a new run, timed after the clear.
- Every batch is checked with the ledger against the run's current state
  first: a message that breaks a transcript rule is refused (naming it) and
  nothing is written.
- Event ids are deterministic per (run, call token, index): a retried
  publish of the same call writes the same ids, which consumers drop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from runwire.contract import ids
from runwire.contract.events import (
    Event,
    EventPayload,
    FrameworkItem,
    RunStarted,
    RunStatus,
    RunStatusChanged,
    UserMessage,
)
from runwire.memory.checks import Caller, InputError
from runwire.transcript.errors import LedgerError
from runwire.transcript.items import ITEMS_LABEL
from runwire.transcript.ledger import (
    LedgerState,
    TranscriptBuilder,
    TranscriptState,
    payloads_for_message,
)
from runwire.transcript.messages import Message, TextPart, ToolResultPart, ToolUsePart
from runwire.transcript.turns import starts_turn

__all__ = [
    "PAUSED_REASON",
    "PRODUCER",
    "SOURCE_LABEL",
    "Caller",
    "Plan",
    "RunTail",
    "ledger_state",
    "millis",
    "plan_items",
    "plan_messages",
    "run_events",
    "session_event",
]

PRODUCER = "runwire-sessions"
SOURCE_LABEL = "runwire.source"
"""Label of recorded runs (value ``session``) and imported ones (``import``)."""
PAUSED_REASON = "recorded through the Session API: no model answers it"


@dataclass(frozen=True, slots=True)
class RunTail:
    """The latest run of a session, as a backend sees it."""

    run_id: str
    first_ms: int
    """Time of the run's first event (ms since the epoch): what orders a session's runs."""
    messages: list[Message]
    recorded: bool
    """True when the run was written through the Session API (safe to append to)."""


@dataclass(frozen=True, slots=True)
class WritePoint:
    """What a write is planned on, from one read: the session's latest run (None:
    none), its clear point (ms), whether it is deleted or ended, and its
    declared owner ``(user_id, tenant)`` when the backend knows it (an owner
    declared never changes)."""

    tail: RunTail | None
    cleared_ms: int | None
    deleted: bool
    ended: bool
    owner: tuple[str | None, str | None] | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """The events of one ``add_messages`` call, all in run ``run_id``."""

    run_id: str
    new_run: bool
    events: list[Event]
    at_ms: int
    messages: list[Message] = field(default_factory=list)


def millis(at: datetime) -> int:
    """Milliseconds since the epoch, computed as the transcript cache computes a run's time."""
    return int(at.timestamp() * 1000)


def from_millis(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def ledger_state(messages: Sequence[Message]) -> LedgerState:
    """The ledger state whose ``build_messages()`` is ``messages`` (a canonical run).

    The last message of a built transcript is always the open one, so the
    state has it open: assistant text appended later merges into it, tool
    results answer the assistant message before it.
    """
    if not messages:
        return LedgerState()
    *committed, last = messages
    if last.role == "assistant":
        return LedgerState(messages=list(committed), assistant=list(last.parts))
    awaiting: list[str] = []
    if committed and committed[-1].role == "assistant":
        awaiting = [p.id for p in committed[-1].parts if isinstance(p, ToolUsePart)]
    return LedgerState(
        messages=list(committed),
        awaiting=awaiting,
        results=[p for p in last.parts if isinstance(p, ToolResultPart)],
        user_text=[p for p in last.parts if isinstance(p, TextPart)],
    )


def session_event(
    payload: EventPayload,
    session_id: str,
    caller: Caller,
    *,
    token: str,
    index: int = 0,
    labels: dict[str, str] | None = None,
    at: datetime | None = None,
) -> Event:
    """A session event from ``caller`` with a deterministic id per (session, token, index)."""
    return Event.create(
        payload,
        session_id=session_id,
        user_id=caller.user_id,
        tenant=caller.tenant,
        producer=PRODUCER,
        labels=labels,
        event_id=ids.deterministic_event_id(session_id, token, index),
        occurred_at=at,
    )


def run_events(
    run_id: str,
    session_id: str,
    caller: Caller,
    payloads: Sequence[EventPayload],
    *,
    token: str,
    at: datetime,
    source: str | None = None,
    labels: dict[str, str] | None = None,
    turn_id: str | None = None,
) -> list[Event]:
    """The events of ``payloads`` in run ``run_id``; with ``source``, preceded by the
    ``run_started`` + ``paused`` pair that opens a recorded run; every one carries
    ``turn_id``."""
    head: list[EventPayload] = []
    if source is not None:
        head = [
            RunStarted(labels={SOURCE_LABEL: source, **(labels or {})}),
            RunStatusChanged(status=RunStatus.PAUSED, reason=PAUSED_REASON),
        ]
    return [
        _run_event(payload, run_id, session_id, caller, token, i, at, turn_id)
        for i, payload in enumerate([*head, *payloads])
    ]


def _run_event(
    payload: EventPayload,
    run_id: str,
    session_id: str | None,
    caller: Caller,
    token: str,
    index: int,
    at: datetime | None,
    turn_id: str | None,
) -> Event:
    """The ``index``-th event a write of run ``run_id`` makes (its id deterministic)."""
    return Event.create(
        payload,
        run_id=run_id,
        session_id=session_id,
        user_id=caller.user_id,
        tenant=caller.tenant,
        turn_id=turn_id,
        producer=PRODUCER,
        event_id=ids.deterministic_event_id(run_id, token, index),
        occurred_at=at,
    )


def _joins_tail(first: Message, tail: RunTail | None) -> bool:
    if tail is None:
        return False
    if any(isinstance(p, ToolResultPart) for p in first.parts):
        return True
    if not tail.recorded:
        return False
    if starts_turn(first):
        return bool(tail.messages) and tail.messages[-1].role == "user"
    return True


def check_run(
    run_id: str,
    before: Sequence[Message],
    messages: Sequence[Message],
    fields: Sequence[str],
    *,
    token: str,
) -> list[EventPayload]:
    """The payloads of ``messages`` appended to a run holding ``before``;
    :class:`InputError` naming the message when the ledger refuses one."""
    checked = _checked_events(
        run_id, None, Caller(), before, messages, fields, token=token, at=None, turn_id=None
    )
    return [e.payload for e in checked]


def _checked_events(
    run_id: str,
    session_id: str | None,
    caller: Caller,
    before: Sequence[Message],
    messages: Sequence[Message],
    fields: Sequence[str],
    *,
    token: str,
    at: datetime | None,
    turn_id: str | None,
    source: str | None = None,
) -> list[Event]:
    """The events :func:`run_events` makes of ``messages`` appended to a run holding
    ``before``, each checked by the ledger as it is made: :class:`InputError`
    naming the message when the ledger refuses one."""
    out: list[Event] = []
    if source is not None:
        assert session_id is not None
        assert at is not None
        out = run_events(
            run_id, session_id, caller, [], token=token, at=at, source=source, turn_id=turn_id
        )
    builder = TranscriptBuilder(
        run_id, state=TranscriptState(run_id=run_id, ledger=ledger_state(before))
    )
    for message, where in zip(messages, fields, strict=True):
        for payload in payloads_for_message(message):
            event = _run_event(payload, run_id, session_id, caller, token, len(out), at, turn_id)
            try:
                builder.apply(event)
            except LedgerError as e:
                raise InputError(where, f"transcript rule {e.rule!r}: {e.detail}") from None
            out.append(event)
    return out


def plan_messages(
    *,
    session_id: str,
    caller: Caller,
    tail: RunTail | None,
    cleared_ms: int | None,
    messages: Sequence[Message],
    fields: Sequence[str],
    now: datetime,
) -> Plan:
    """Where ``messages`` go and the events that put them there (see the module doc)."""
    if not messages:
        raise InputError("messages", "empty: nothing to add")
    if tail is not None and cleared_ms is not None and tail.first_ms <= cleared_ms:
        tail = None  # cleared: out of reach
    token = ids.new_event_id()
    if _joins_tail(messages[0], tail):
        assert tail is not None
        at = now
        # A recorded run is one turn; results answering another run's calls are
        # of whatever turn that run is in.
        turn = tail.run_id if tail.recorded else None
        events = _checked_events(
            tail.run_id,
            session_id,
            caller,
            tail.messages,
            messages,
            fields,
            token=token,
            at=at,
            turn_id=turn,
        )
        return Plan(tail.run_id, False, events, millis(at), list(messages))
    run_id = ids.new_event_id()
    # 2 ms, not 1: ``millis`` goes through a float and may land 1 ms low.
    floor = max(
        cleared_ms + 2 if cleared_ms is not None else 0,
        tail.first_ms + 2 if tail is not None else 0,
    )
    at = max(now, from_millis(floor))
    events = _checked_events(
        run_id,
        session_id,
        caller,
        [],
        messages,
        fields,
        token=token,
        at=at,
        turn_id=run_id,
        source="session",
    )
    return Plan(run_id, True, events, millis(at), list(messages))


def plan_items(
    *,
    session_id: str,
    caller: Caller,
    tail: RunTail | None,
    cleared_ms: int | None,
    framework: str,
    items: Sequence[tuple[object, Sequence[EventPayload]]],
    now: datetime,
) -> Plan:
    """The events that keep a framework's ``items`` (each with the canonical payloads
    that stand for it) in the session, as one batch in one run.

    - A batch whose first item starts a turn (user text, no tool result), or
      that follows a clear, or whose session's latest run is not a recorded
      one, opens a new recorded *item run* (``run_started`` labelled
      :data:`~runwire.transcript.items.ITEMS_LABEL`); otherwise it joins the
      latest run.
    - Each item is written as its canonical events then a ``framework_item``
      naming how many of them stand for it. An item whose canonical events the
      ledger refuses where it comes (a tool output with no call before it in
      the run, say) is kept verbatim only (``events=0``): nothing a framework
      gives is dropped or rewritten.
    """
    if not items:
        raise InputError("items", "empty: nothing to add")
    if tail is not None and cleared_ms is not None and tail.first_ms <= cleared_ms:
        tail = None
    token = ids.new_event_id()
    first = items[0][1]
    opens_turn = bool(first) and isinstance(first[0], UserMessage)
    joins = tail is not None and tail.recorded and not opens_turn
    run_id = tail.run_id if joins and tail is not None else ids.new_event_id()
    before = tail.messages if joins and tail is not None else []
    builder = TranscriptBuilder(
        run_id, state=TranscriptState(run_id=run_id, ledger=ledger_state(before))
    )
    payloads: list[EventPayload] = []
    for n, (item, canonical) in enumerate(items):
        kept: list[EventPayload] = []
        if canonical:
            saved = builder.state
            try:
                for i, payload in enumerate(canonical):
                    builder.apply(
                        Event.create(
                            payload,
                            run_id=run_id,
                            producer=PRODUCER,
                            event_id=ids.deterministic_event_id(run_id, token, n * 1000 + i),
                        )
                    )
                kept = list(canonical)
            except LedgerError:
                builder = TranscriptBuilder(run_id, state=saved)
        payloads += kept
        payloads.append(FrameworkItem(framework=framework, item=item, events=len(kept)))
    if joins:
        events = run_events(
            run_id, session_id, caller, payloads, token=token, at=now, turn_id=run_id
        )
        return Plan(run_id, False, events, millis(now))
    floor = max(
        cleared_ms + 2 if cleared_ms is not None else 0,
        tail.first_ms + 2 if tail is not None else 0,
    )
    at = max(now, from_millis(floor))
    events = run_events(
        run_id,
        session_id,
        caller,
        payloads,
        token=token,
        at=at,
        source="session",
        labels={ITEMS_LABEL: framework},
        turn_id=run_id,
    )
    return Plan(run_id, True, events, millis(at))
