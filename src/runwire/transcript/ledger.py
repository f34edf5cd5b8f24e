"""The ledger: builds a run's canonical messages, fed by hand or from the log.

Contract (:class:`Ledger`):
- Assistant parts (thinking, text, tool_use) go into the open assistant
  message, opening one when none is open. User content (tool results, text)
  goes into the open user message and first flushes the open assistant
  message. So messages alternate user / assistant by construction.
- Thinking opens an assistant message: thinking after text or a tool_use in
  the same message is refused (``thinking_after_content``), never moved to
  the head (nothing is ever reordered; and it cannot open a message of its
  own, which would put two assistant messages in a row). A thinking part is
  kept only with redacted bytes, or text plus its signature (signed empty
  text counts: Anthropic's omitted-display blocks); unsigned thinking (a
  streamed preview, a local model's reasoning) is dropped.
- Empty text is ignored; consecutive assistant text is merged into one part.
  Text after a tool_use in the same message is refused (rule 1 of the design:
  thinking, text, tool_use, never reordered).
- ``flush_assistant()`` with nothing open is safe and does nothing.
- Tool results answer the tool_uses of the immediately preceding assistant
  message and are put in those tool_uses' declaration order, whatever order
  they arrive in; all results of one assistant message go into one user
  message, before any user text. A result with an empty id, for an unknown
  id, or a second result for one id is refused; a tool_use id is unique in
  the run; the next assistant message cannot start before every tool_use of
  the previous one has its result. A tool_use input or tool_result content
  nested deeper than :data:`~runwire.transcript.depth.MAX_VALUE_DEPTH`
  levels is refused (``nested_too_deep``): a stored transcript could not hold it.
- ``build_messages()`` is pure and deterministic: the same appends give the
  same messages, and it keeps the whole multi-turn history (the open message,
  if any, comes last).
- A refused append raises :class:`LedgerError` naming the rule and leaves the
  ledger exactly as it was.

Contract (:class:`TranscriptBuilder`, :func:`build_messages_from_events`):
- Folds one run's events in log order into a ledger: ``user_message``
  -> user text, ``thinking`` / ``assistant_text`` / ``tool_use`` -> the
  assistant message, ``tool_result`` -> the user tool-results message. Every
  other event type makes no message and is ignored.
- Folding event by event (``apply``) gives exactly the messages that
  ``build_messages_from_events`` gives for the same events; the state can be
  dumped to JSON and restored in another process without changing that.
- An event whose ``event_id`` was already applied is dropped (a retried
  publish); the same id with a different body is refused
  (``conflicting_duplicate_event``, :mod:`runwire.contract.identity`). This
  holds for every event of the run, also those that make no message.
- A refused event raises :class:`LedgerError` naming the run, the event id and
  the rule, and leaves the builder's state unchanged.
- ``framework_item`` / ``item_popped`` keep and take back an agent
  framework's items beside the messages (:mod:`runwire.transcript.items`):
  ``items()`` gives the live ones; a pop in an item run takes back the
  canonical events that stand for the item, so ``messages()`` no longer
  shows them either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from runwire.contract.events import (
    PAYLOAD_TYPES,
    AssistantText,
    Event,
    EventPayload,
    EventType,
    FrameworkItem,
    ItemPopped,
    RunStarted,
    Thinking,
    ToolResult,
    ToolUse,
    UserMessage,
)
from runwire.contract.identity import CONFLICTING_DUPLICATE, payload_digest
from runwire.contract.records import construct
from runwire.errors import listed
from runwire.transcript.depth import MAX_VALUE_DEPTH, deeper_than
from runwire.transcript.errors import LedgerError
from runwire.transcript.items import ITEMS_LABEL, ItemsState, KeptItem, KeptPayload
from runwire.transcript.messages import (
    Message,
    Part,
    Role,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolUsePart,
)

__all__ = [
    "NESTED_TOO_DEEP",
    "Ledger",
    "LedgerState",
    "TranscriptBuilder",
    "TranscriptState",
    "build_messages_from_events",
    "payloads_for_message",
    "payloads_for_messages",
]


NESTED_TOO_DEEP = "nested_too_deep"
"""The rule that refuses tool JSON deeper than :data:`~runwire.transcript.depth.MAX_VALUE_DEPTH`."""


class LedgerState(BaseModel):
    """Everything a :class:`Ledger` knows, as plain data (JSON-safe).

    At most one of ``assistant`` and (``results``, ``user_text``) is
    non-empty: that is the open message.
    """

    model_config = ConfigDict(extra="forbid")

    messages: list[Message] = Field(default_factory=list)
    """Committed messages, oldest first."""
    assistant: list[Part] = Field(default_factory=list)
    """The open assistant message's parts."""
    awaiting: list[str] = Field(default_factory=list)
    """Tool_use ids of the last committed assistant message, declaration order."""
    results: list[ToolResultPart] = Field(default_factory=list)
    """Results received for ``awaiting``, in arrival order."""
    user_text: list[TextPart] = Field(default_factory=list)
    """Text of the open user message, in arrival order."""


def _copied(state: LedgerState) -> LedgerState:
    """A state with lists of its own: the ledger only appends to its lists, and
    what they hold (messages, parts, ids) is immutable, so it is shared rather
    than deep-copied (which was most of the cost of opening a ledger)."""
    return LedgerState.model_construct(
        messages=list(state.messages),
        assistant=list(state.assistant),
        awaiting=list(state.awaiting),
        results=list(state.results),
        user_text=list(state.user_text),
    )


def _tool_use_ids(parts: Iterable[Part]) -> list[str]:
    # By kind, not isinstance: a miss against a pydantic model class goes
    # through ABCMeta, and this runs for every committed assistant message.
    return [p.id for p in parts if p.kind == "tool_use"]


class Ledger:
    """Builds canonical messages from appends; see the module contract."""

    def __init__(self, state: LedgerState | None = None) -> None:
        self._s = _copied(state) if state is not None else LedgerState()
        self._ids: set[str] = set()
        for message in self._s.messages:
            self._ids.update(_tool_use_ids(message.parts))
        self._ids.update(_tool_use_ids(self._s.assistant))
        # ``awaiting`` and the ids ``results`` answer, as sets kept beside the
        # lists, and how many of ``awaiting`` have a result: a result, and the
        # question whether any call still waits, cost a lookup, never a walk
        # over a run's calls (a log may hold any number of them).
        self._awaiting = set(self._s.awaiting)
        self._received = {r.tool_use_id for r in self._s.results}
        self._answered = len(self._awaiting & self._received)

    @property
    def state(self) -> LedgerState:
        """A copy of the ledger's state; ``Ledger(state)`` restores it."""
        return _copied(self._s)

    @property
    def awaiting_tool_results(self) -> list[str]:
        """Tool_use ids of the last assistant message still without a result,
        in declaration order. Empty while an assistant message is open."""
        if not self.awaits_tool_results:
            return []
        received = self._received
        return [i for i in self._s.awaiting if i not in received]

    @property
    def awaits_tool_results(self) -> bool:
        """Whether :attr:`awaiting_tool_results` is not empty (without listing them)."""
        return self._answered < len(self._awaiting)

    @property
    def is_empty(self) -> bool:
        return not (self._s.messages or self._s.assistant or self._s.results or self._s.user_text)

    # -- assistant side ------------------------------------------------------

    def append_thinking(
        self,
        text: str | None = None,
        signature: str | None = None,
        redacted: bytes | None = None,
    ) -> bool:
        """Add a thinking part at the head of the assistant message.

        Returns whether it was kept: redacted bytes win (text beside them is
        not the provider's to check); otherwise a signature is needed, with
        its text (empty text is kept when signed, see
        :attr:`ThinkingPart.complete`).
        """
        if redacted:
            part = self._redacted_thinking(bytes(redacted))
        elif signature:
            part = self._signed_thinking(text or "", signature)
        else:
            return False
        parts = self._s.assistant
        if parts and parts[-1].kind != "thinking":
            raise LedgerError(
                "thinking_after_content",
                f"thinking arrived after {type(parts[-1]).__name__} in the same assistant "
                "message; an assistant message is thinking, text, tool_use, never reordered",
            )
        self._open_assistant()
        self._s.assistant.append(part)
        return True

    def append_text(self, text: str) -> None:
        """Add visible assistant text, merged into a directly preceding text part."""
        if not text:
            return
        parts = self._s.assistant
        if parts and (last := parts[-1]).kind == "tool_use":
            raise LedgerError(
                "text_after_tool_use",
                # Its length, never its words: a refusal's detail becomes a dead
                # letter's header, which is not sealed and outlives an erasure.
                f"assistant text ({len(text)} characters) arrived after tool_use {last.id!r} "
                "in the same message; an assistant message is thinking, text, tool_use",
            )
        self._open_assistant()
        parts = self._s.assistant
        if parts and (last := parts[-1]).kind == "text":
            parts[-1] = self._text(last.text + text)
        else:
            parts.append(self._text(text))

    def declare_tool_use(self, id: str, name: str, input: Mapping[str, Any] | None = None) -> None:
        """Add a tool_use to the assistant message; ``id`` must be new in the run."""
        if not id:
            raise LedgerError("empty_tool_use_id", f"tool_use of {name!r} has an empty id")
        if not name:
            raise LedgerError("empty_tool_name", f"tool_use {id!r} has an empty tool name")
        if id in self._ids:
            raise LedgerError(
                "duplicate_tool_use_id", f"tool_use id {id!r} was already declared in this run"
            )
        if input and deeper_than(input, MAX_VALUE_DEPTH):
            raise LedgerError(
                NESTED_TOO_DEEP,
                f"tool_use {id!r} has an input nested deeper than {MAX_VALUE_DEPTH} lists and "
                "objects, more than a stored transcript holds",
            )
        self._open_assistant()
        self._s.assistant.append(self._tool_use(id, name, dict(input or {})))
        self._ids.add(id)

    def append_part(self, part: Part) -> None:
        """Add one assistant part (e.g. from a provider decoder) by kind.

        Tool results go to :meth:`append_user_tool_results`.
        """
        if isinstance(part, ThinkingPart):
            self.append_thinking(part.text, part.signature, part.redacted)
        elif isinstance(part, TextPart):
            self.append_text(part.text)
        elif isinstance(part, ToolUsePart):
            self.declare_tool_use(part.id, part.name, part.input)
        else:
            self.append_user_tool_results([part])

    def flush_assistant(self) -> None:
        """Commit the open assistant message; safe when none is open."""
        if not self._s.assistant:
            return
        parts = self._s.assistant
        self._s.messages.append(_message("assistant", tuple(parts)))
        # Lists are emptied and refilled in place: assigning a field goes
        # through pydantic's ``__setattr__``, once per message per run.
        self._s.awaiting[:] = _tool_use_ids(parts)
        self._awaiting = set(self._s.awaiting)
        self._answered = len(self._awaiting & self._received)
        parts.clear()

    # -- user side -----------------------------------------------------------

    def append_user_tool_results(self, results: Iterable[ToolResultPart]) -> None:
        """Add results for the tool_uses of the last assistant message.

        All of them are checked before any is added: on error nothing changes.
        """
        batch = list(results)
        if not batch:
            return
        # The ids these results may answer: the open assistant message's (it
        # is about to be flushed) or else the last committed one's.
        if self._s.assistant:
            declared = _tool_use_ids(self._s.assistant)
            known, received = set(declared), set[str]()
        else:
            declared = self._s.awaiting
            known, received = self._awaiting, self._received
        batch_ids: set[str] = set()
        for result in batch:
            rid = result.tool_use_id
            if not rid:
                raise LedgerError("empty_tool_result_id", "a tool_result has an empty tool_use_id")
            if rid not in known:
                raise LedgerError(
                    "unknown_tool_use",
                    f"tool_result for {rid!r} answers no tool_use of the preceding "
                    f"assistant message (declared: {listed(map(repr, declared), len(declared))})",
                )
            if rid in received or rid in batch_ids:
                raise LedgerError("duplicate_tool_result", f"tool_use {rid!r} already has a result")
            if isinstance(result.content, list | dict) and deeper_than(
                result.content, MAX_VALUE_DEPTH
            ):
                raise LedgerError(
                    NESTED_TOO_DEEP,
                    f"the tool_result for {rid!r} has content nested deeper than "
                    f"{MAX_VALUE_DEPTH} lists and objects, more than a stored transcript holds",
                )
            batch_ids.add(rid)
        self.flush_assistant()
        self._s.results.extend(batch)
        self._received |= batch_ids
        self._answered += len(batch_ids)  # all of them among the awaited, checked above

    def append_user_text(self, *texts: str) -> None:
        """Add user text part(s) to the open user message; empty text is ignored."""
        parts = [self._text(t) for t in texts if t]
        if not parts:
            return
        self.flush_assistant()
        self._s.user_text.extend(parts)

    # -- output --------------------------------------------------------------

    def build_messages(self) -> list[Message]:
        """The transcript so far, committed messages then the open one."""
        out = list(self._s.messages)
        if self._s.assistant:
            out.append(Message(role="assistant", parts=tuple(self._s.assistant)))
        user = self._open_user_parts()
        if user:
            out.append(Message(role="user", parts=user))
        return out

    # -- parts ---------------------------------------------------------------

    # What a caller hands in is validated as each part is made; a ledger that
    # folds event payloads (:class:`_PayloadLedger`) makes them without that.

    @staticmethod
    def _text(text: str) -> TextPart:
        return TextPart(text=text)

    @staticmethod
    def _redacted_thinking(redacted: bytes) -> ThinkingPart:
        return ThinkingPart(redacted=redacted)

    @staticmethod
    def _signed_thinking(text: str, signature: str) -> ThinkingPart:
        return ThinkingPart(text=text, signature=signature)

    @staticmethod
    def _tool_use(id: str, name: str, input: dict[str, Any]) -> ToolUsePart:
        return ToolUsePart(id=id, name=name, input=input)

    @staticmethod
    def _tool_result(tool_use_id: str, content: Any, is_error: bool) -> ToolResultPart:
        return ToolResultPart(tool_use_id=tool_use_id, content=content, is_error=is_error)

    # -- internals -----------------------------------------------------------

    def _open_user_parts(self) -> tuple[Part, ...]:
        if not self._s.results:
            return tuple(self._s.user_text)
        by_id = {r.tool_use_id: r for r in self._s.results}
        ordered: list[Part] = [by_id[i] for i in self._s.awaiting if i in by_id]
        return (*ordered, *self._s.user_text)

    def _open_assistant(self) -> None:
        """Make sure an assistant message is open; checks before it changes anything."""
        if self._s.assistant:
            return
        missing = self.awaiting_tool_results
        if missing:
            raise LedgerError(
                "tool_results_incomplete",
                f"a new assistant message started while tool_use(s) {missing} of the "
                "previous one have no result",
            )
        user = self._open_user_parts()
        if user:
            self._s.messages.append(_message("user", user))
            self._s.results.clear()
            self._s.user_text.clear()
            self._s.awaiting.clear()
            self._awaiting, self._received, self._answered = set(), set(), 0
        elif self._s.messages and self._s.messages[-1].role == "assistant":
            raise LedgerError(
                "assistant_after_assistant",
                "a new assistant message started right after a flushed assistant message; "
                "user content must come between them",
            )


class _PayloadLedger(Ledger):
    """The ledger of a :class:`TranscriptBuilder`: it only folds event payloads,
    whose fields the event model validated (pydantic for an event made here,
    the codec for one read from the log) with the types of the parts' fields,
    so it makes its parts without validating them again (which cost a third
    of the fold, once per event of every run a projection folds). Each part
    is the one validation makes of the same arguments, fields set included."""

    @staticmethod
    def _text(text: str) -> TextPart:
        part: TextPart = construct(TextPart, {"kind": "text", "text": text}, _TEXT_SET)
        return part

    @staticmethod
    def _redacted_thinking(redacted: bytes) -> ThinkingPart:
        values = {"kind": "thinking", "text": None, "signature": None, "redacted": redacted}
        part: ThinkingPart = construct(ThinkingPart, values, _REDACTED_SET)
        return part

    @staticmethod
    def _signed_thinking(text: str, signature: str) -> ThinkingPart:
        values = {"kind": "thinking", "text": text, "signature": signature, "redacted": None}
        part: ThinkingPart = construct(ThinkingPart, values, _SIGNED_SET)
        return part

    @staticmethod
    def _tool_use(id: str, name: str, input: dict[str, Any]) -> ToolUsePart:
        values = {"kind": "tool_use", "id": id, "name": name, "input": input}
        part: ToolUsePart = construct(ToolUsePart, values, _TOOL_USE_SET)
        return part

    @staticmethod
    def _tool_result(tool_use_id: str, content: Any, is_error: bool) -> ToolResultPart:
        values = {
            "kind": "tool_result",
            "tool_use_id": tool_use_id,
            "content": content,
            "is_error": is_error,
        }
        part: ToolResultPart = construct(ToolResultPart, values, _TOOL_RESULT_SET)
        return part


# The fields :class:`Ledger`'s validating constructors pass (what validation records as set).
_TEXT_SET = frozenset({"text"})
_REDACTED_SET = frozenset({"redacted"})
_SIGNED_SET = frozenset({"text", "signature"})
_TOOL_USE_SET = frozenset({"id", "name", "input"})
_TOOL_RESULT_SET = frozenset({"tool_use_id", "content", "is_error"})


def _message(role: Role, parts: tuple[Part, ...]) -> Message:
    """A message the ledger commits, of parts it made (each validated then) in
    the order its rules keep: built without validating them again, which cost
    four times the rest (once per message of every run a projection folds)."""
    message: Message = construct(Message, {"role": role, "parts": parts})
    return message


# -- the log-fed fold ----------------------------------------------------------

# What ``apply`` does with a payload, by its class. A payload's class is looked
# up once (``_step_of``, the isinstance chain in the order it was written);
# a chain of isinstance per event cost an eighth of the fold, as isinstance
# on a pydantic model goes through ``ABCMeta`` when it misses.
_OTHER, _RUN_STARTED, _FRAMEWORK_ITEM, _ITEM_POPPED = 1, 2, 3, 4
_USER, _THINKING, _TEXT, _TOOL_USE, _TOOL_RESULT = 5, 6, 7, 8, 9
_STEP_CLASSES: tuple[tuple[type[EventPayload], int], ...] = (
    (RunStarted, _RUN_STARTED),
    (FrameworkItem, _FRAMEWORK_ITEM),
    (ItemPopped, _ITEM_POPPED),
    (UserMessage, _USER),
    (Thinking, _THINKING),
    (AssistantText, _TEXT),
    (ToolUse, _TOOL_USE),
    (ToolResult, _TOOL_RESULT),
)
_STEPS: dict[type, int] = {}


def _step_of(model: type) -> int:
    step = next((s for cls, s in _STEP_CLASSES if issubclass(model, cls)), _OTHER)
    _STEPS[model] = step
    return step


def _fold_step(step: int, ledger: Ledger, payload: EventPayload) -> None:
    """Fold a canonical payload (``step`` is its class's) into ``ledger``."""
    if step == _TEXT:
        assert isinstance(payload, AssistantText)
        ledger.append_text(payload.text)
    elif step == _TOOL_RESULT:
        assert isinstance(payload, ToolResult)
        ledger.append_user_tool_results(
            [ledger._tool_result(payload.tool_use_id, payload.content, payload.is_error)]
        )
    elif step == _TOOL_USE:
        assert isinstance(payload, ToolUse)
        ledger.declare_tool_use(payload.id, payload.name, payload.input)
    elif step == _THINKING:
        assert isinstance(payload, Thinking)
        ledger.append_thinking(payload.text, payload.signature, payload.redacted)
    elif step == _USER:
        assert isinstance(payload, UserMessage)
        ledger.append_user_text(*payload.parts)


class TranscriptState(BaseModel):
    """A :class:`TranscriptBuilder`'s state, JSON-safe, for caches to keep."""

    model_config = ConfigDict(extra="forbid")

    run_id: str | None = None
    ledger: LedgerState = Field(default_factory=LedgerState)
    applied: dict[str, str] = Field(default_factory=dict)
    """Digest of every applied event's body, by event id (transcript events and,
    since the digest check covers every event of the run, the others too)."""
    items: ItemsState | None = None
    """Framework items (None for a run that never had one and keeps nothing)."""


class TranscriptBuilder:
    """Keeps one run's messages up to date, one event at a time."""

    def __init__(self, run_id: str | None = None, *, state: TranscriptState | None = None) -> None:
        if state is not None and run_id is not None and state.run_id not in (None, run_id):
            raise ValueError(f"state is for run {state.run_id!r}, not {run_id!r}")
        self._run_id = run_id if run_id is not None else (state.run_id if state else None)
        self._ledger: Ledger = _PayloadLedger(state.ledger if state else None)
        self._applied: dict[str, str] = dict(state.applied) if state else {}
        self._items: ItemsState | None = (
            state.items.model_copy(deep=True) if state is not None and state.items else None
        )

    @property
    def run_id(self) -> str | None:
        return self._run_id

    @property
    def state(self) -> TranscriptState:
        return TranscriptState(
            run_id=self._run_id,
            ledger=self._ledger.state,
            applied=dict(self._applied),
            items=self._items.model_copy(deep=True) if self._items else None,
        )

    @property
    def items_state(self) -> ItemsState | None:
        """The framework-item state itself (not a copy): for the cache's encoder."""
        return self._items

    @property
    def rewinds(self) -> int:
        """How many pops took canonical events back (committed messages changed)."""
        return self._items.rewinds if self._items else 0

    def items(self) -> list[KeptItem]:
        """The run's live framework items, in log order."""
        return list(self._items.items) if self._items else []

    @property
    def awaiting_tool_results(self) -> list[str]:
        """Tool_use ids of the last assistant message still waiting for a result."""
        return self._ledger.awaiting_tool_results

    @property
    def awaits_tool_results(self) -> bool:
        """Whether any tool_use of the last assistant message waits for a result."""
        return self._ledger.awaits_tool_results

    def messages(self) -> list[Message]:
        return self._ledger.build_messages()

    def apply(self, event: Event) -> bool:
        """Fold one event in; returns whether it changed the builder's state.

        Events of other runs are refused (rule ``wrong_run``). Every event of
        the run is remembered by id with its body digest
        (:mod:`runwire.contract.identity`): a repeat returns ``False``, the
        same id with another body is refused (``conflicting_duplicate_event``).
        Events that make no message change only that memory.
        """
        run_id = event.run_id
        if run_id is None:
            return False
        if run_id != self._run_id:
            if self._run_id is not None:
                raise LedgerError(
                    "wrong_run",
                    f"event of run {run_id!r} fed to the transcript of run {self._run_id!r}",
                    run_id=self._run_id,
                    event_id=event.event_id,
                )
            self._run_id = run_id
        payload = event.payload
        digest = payload_digest(payload)
        event_id = event.event_id
        seen = self._applied.get(event_id)
        if seen is not None:
            if seen == digest:
                return False
            raise LedgerError(
                CONFLICTING_DUPLICATE,
                f"an event with this id was already applied with another body ({seen}, "
                f"this one {digest}); the first is kept",
                run_id=self._run_id,
                event_id=event_id,
            )
        step = _STEPS.get(type(payload)) or _step_of(type(payload))
        # Canonical payloads first: most events are one (and events that make
        # no message only need remembering).
        if step != _OTHER:
            try:
                if step >= _USER:
                    _fold_step(step, self._ledger, payload)
                    if self._items is not None and self._items.keep:
                        self._items.kept.append(KeptPayload.of(payload))
                elif step == _RUN_STARTED:
                    assert isinstance(payload, RunStarted)
                    if ITEMS_LABEL in payload.labels:
                        self._start_item_run()
                elif step == _FRAMEWORK_ITEM:
                    assert isinstance(payload, FrameworkItem)
                    self._keep_item(event_id, payload)
                else:
                    assert isinstance(payload, ItemPopped)
                    self._pop_item(payload.item_event_id)
            except LedgerError as e:
                raise e.at(run_id=self._run_id, event_id=event_id) from e
        self._applied[event_id] = digest
        return True

    def _start_item_run(self) -> None:
        """An item run keeps its canonical payloads from its start; a ``run_started``
        that comes after content (or again) changes nothing."""
        if self._items is not None or self._ledger.build_messages():
            return
        self._items = ItemsState(keep=True)

    def _keep_item(self, event_id: str, payload: FrameworkItem) -> None:
        items = self._items
        if items is None:
            items = ItemsState()
        first = -1
        if items.keep and payload.events:
            unclaimed = len(items.kept) - items.claimed_until()
            if payload.events > unclaimed:
                raise LedgerError(
                    "item_claims_too_much",
                    f"the item stands for {payload.events} canonical events, but only "
                    f"{unclaimed} came after the previous item",
                )
            first = len(items.kept) - payload.events
        items.items.append(
            KeptItem(
                event_id=event_id,
                framework=payload.framework,
                item=payload.item,
                first=first,
                events=payload.events,
            )
        )
        self._items = items

    def _pop_item(self, item_event_id: str) -> None:
        items = self._items
        live = items.items if items is not None else []
        found = next((i for i, it in enumerate(live) if it.event_id == item_event_id), None)
        if items is None or found is None:
            raise LedgerError("unknown_item", f"no live item was written by {item_event_id!r}")
        item = items.items[found]
        if not item.events:
            del items.items[found]
            return
        if item.first < 0:
            raise LedgerError(
                "item_not_retractable",
                f"item {item_event_id!r} stands for canonical events in a run that does not "
                "keep them (not an item run)",
            )
        kept = items.kept[: item.first] + items.kept[item.first + item.events :]
        ledger = _PayloadLedger()
        try:
            for entry in kept:
                self._fold_into(ledger, _payload_of(entry))
        except LedgerError as e:
            raise LedgerError(
                "pop_breaks_transcript",
                f"taking item {item_event_id!r} back would break the transcript ({e.rule}: "
                f"{e.detail})",
            ) from None
        self._ledger = ledger
        items.kept = kept
        del items.items[found]
        for later in items.items[found:]:
            if later.first >= 0:
                later.first -= item.events
        items.rewinds += 1

    def apply_all(self, events: Iterable[Event]) -> None:
        for event in events:
            self.apply(event)

    @staticmethod
    def _fold_into(ledger: Ledger, payload: EventPayload) -> None:
        step = _STEPS.get(type(payload)) or _step_of(type(payload))
        if step >= _USER:
            _fold_step(step, ledger, payload)


def _payload_of(entry: KeptPayload) -> EventPayload:
    return entry.payload(PAYLOAD_TYPES[EventType(entry.type)])


def build_messages_from_events(events: Iterable[Event], run_id: str | None = None) -> list[Message]:
    """The canonical messages of one run's events, given in log order.

    ``run_id`` defaults to the run of the first run event.
    """
    builder = TranscriptBuilder(run_id)
    builder.apply_all(events)
    return builder.messages()


# -- the other direction: messages -> event payloads -------------------------------


def payloads_for_message(message: Message) -> list[EventPayload]:
    """The event payloads that, folded in order, rebuild ``message``
    (a canonical one, as a ledger builds it: consecutive texts would merge).

    An assistant message gives one ``thinking`` per thinking part (``index``
    counts them, ``final`` marks the last), one ``assistant_text`` per text
    part and one ``tool_use`` per tool_use; a user message gives one
    ``tool_result`` per result, then one ``user_message`` with all its text.
    """
    out: list[EventPayload] = []
    last_thinking = sum(isinstance(p, ThinkingPart) for p in message.parts) - 1
    index = 0
    texts: list[str] = []
    for part in message.parts:
        if isinstance(part, ThinkingPart):
            out.append(
                Thinking(
                    text=part.text,
                    signature=part.signature,
                    redacted=part.redacted,
                    index=index,
                    final=index == last_thinking,
                )
            )
            index += 1
        elif isinstance(part, TextPart):
            if message.role == "user":
                texts.append(part.text)
            else:
                out.append(AssistantText(text=part.text))
        elif isinstance(part, ToolUsePart):
            out.append(ToolUse(id=part.id, name=part.name, input=part.input))
        else:
            out.append(
                ToolResult(
                    tool_use_id=part.tool_use_id, content=part.content, is_error=part.is_error
                )
            )
    if texts:
        out.append(UserMessage(parts=texts))
    return out


def payloads_for_messages(messages: Sequence[Message]) -> list[EventPayload]:
    """:func:`payloads_for_message` over a whole transcript, in order."""
    return [p for m in messages for p in payloads_for_message(m)]
