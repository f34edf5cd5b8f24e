"""Goa-AI memory events as runwire run events, and back (pure: no I/O).

Contract:
- Each memory event type is one runwire event type; ``data`` holds the
  fields runwire keeps for it (Goa-AI's ``event_data.go`` names, values
  already decoded from JSON):

  ==================  ================  ==============================================
  memory type         runwire event     data
  ==================  ================  ==============================================
  user_message        user_message      ``message`` (text)
  assistant_message   assistant_text    ``message`` (text)
  tool_call           tool_use          ``tool_call_id``, ``tool_name``, ``payload``
                                        (a JSON object, default ``{}``)
  tool_result         tool_result       ``tool_call_id``, ``tool_name`` (the call's),
                                        ``result`` (JSON) or ``error_message`` (text)
  planner_note        planner_note      ``note`` (text)
  thinking            thinking          ``text``, ``signature``, ``redacted`` (base64
                                        text), ``content_index`` (default 0),
                                        ``final`` (default true)
  ==================  ================  ==============================================

  Any other field is refused (runwire would not keep it), as is a missing
  required one; the error names ``events[i].data.<field>``.
- Read back, an event's data holds exactly these fields (defaults left out:
  ``payload`` only when not empty, ``content_index`` when not 0, ``final``
  when false). A user message written by another producer with several
  parts reads as one ``user_message`` per part. Run events of other types
  (lifecycle, usage, context) are not memory events and are left out.
- An event's *key* names it within its run: ``tool_call:<id>`` and
  ``tool_result:<id>`` for tool events (the ids the client's ``resume``
  gives results too), else ``memory:<type>:<timestamp ms>:<n>``, ``n``
  counting the events of that type and millisecond earlier in the same
  call. The runwire ``event_id`` is the deterministic id of (run, key), so
  a retried append writes the same ids; two different events of one type
  in the same millisecond must be sent in one call.
- :func:`build_messages_from_events` is Goa-AI's ``BuildMessagesFromEvents``:
  the canonical messages of a run's memory events, by the transcript ledger.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from runwire.contract import ids, jsonvalues
from runwire.contract.events import (
    AssistantText,
    Event,
    EventPayload,
    PlannerNote,
    Thinking,
    ToolResult,
    ToolUse,
    UserMessage,
)
from runwire.errors import InputError
from runwire.stores.types import MemoryEvent, MemoryEventType, StoreInputError
from runwire.transcript.ledger import build_messages_from_events as ledger_messages
from runwire.transcript.messages import Message

__all__ = [
    "FIELDS",
    "PRODUCER",
    "build_messages_from_events",
    "memory_events",
    "normalized",
    "runwire_events",
]

PRODUCER = "runwire-stores"

FIELDS: Mapping[MemoryEventType, tuple[frozenset[str], frozenset[str]]] = {
    MemoryEventType.USER_MESSAGE: (frozenset({"message"}), frozenset()),
    MemoryEventType.ASSISTANT_MESSAGE: (frozenset({"message"}), frozenset()),
    MemoryEventType.TOOL_CALL: (frozenset({"tool_call_id", "tool_name"}), frozenset({"payload"})),
    MemoryEventType.TOOL_RESULT: (
        frozenset({"tool_call_id", "tool_name"}),
        frozenset({"result", "error_message"}),
    ),
    MemoryEventType.PLANNER_NOTE: (frozenset({"note"}), frozenset()),
    MemoryEventType.THINKING: (
        frozenset(),
        frozenset({"text", "signature", "redacted", "content_index", "final"}),
    ),
}
"""Per type: the required and the optional data fields."""


def _text(data: Mapping[str, Any], name: str, where: str, *, empty: bool = False) -> str:
    value = data[name]
    if not isinstance(value, str):
        raise StoreInputError(f"{where}.{name}", f"must be text, got {type(value).__name__}")
    if not value and not empty:
        raise StoreInputError(f"{where}.{name}", "must not be empty")
    return value


def _payload(kind: MemoryEventType, data: Mapping[str, Any], where: str) -> EventPayload:
    """The runwire payload of one (checked) memory event."""
    if kind is MemoryEventType.USER_MESSAGE:
        return UserMessage(parts=[_text(data, "message", where)])
    if kind is MemoryEventType.ASSISTANT_MESSAGE:
        return AssistantText(text=_text(data, "message", where))
    if kind is MemoryEventType.PLANNER_NOTE:
        return PlannerNote(text=_text(data, "note", where))
    if kind is MemoryEventType.TOOL_CALL:
        arguments = data.get("payload", {})
        if not isinstance(arguments, dict):
            raise StoreInputError(f"{where}.payload", "must be a JSON object (the tool's input)")
        return ToolUse(
            id=_text(data, "tool_call_id", where),
            name=_text(data, "tool_name", where),
            input=arguments,
        )
    if kind is MemoryEventType.TOOL_RESULT:
        _text(data, "tool_name", where)
        if "error_message" in data:
            if "result" in data:
                raise StoreInputError(
                    f"{where}.error_message", "a tool result has a result or an error, not both"
                )
            return ToolResult(
                tool_use_id=_text(data, "tool_call_id", where),
                content=_text(data, "error_message", where),
                is_error=True,
            )
        return ToolResult(
            tool_use_id=_text(data, "tool_call_id", where), content=data.get("result")
        )
    return _thinking(data, where)


def _thinking(data: Mapping[str, Any], where: str) -> Thinking:
    redacted: bytes | None = None
    if data.get("redacted") is not None:
        try:
            redacted = base64.b64decode(_text(data, "redacted", where), validate=True)
        except binascii.Error:
            raise StoreInputError(f"{where}.redacted", "must be base64 text") from None
    index = data.get("content_index", 0)
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise StoreInputError(f"{where}.content_index", "must be an integer >= 0")
    final = data.get("final", True)
    if not isinstance(final, bool):
        raise StoreInputError(f"{where}.final", "must be true or false")
    text = data.get("text")
    signature = data.get("signature")
    for name, value in (("text", text), ("signature", signature)):
        if value is not None and not isinstance(value, str):
            raise StoreInputError(f"{where}.{name}", "must be text")
    return Thinking(text=text, signature=signature, redacted=redacted, index=index, final=final)


def _timestamp(value: Any, where: str) -> datetime:
    if not isinstance(value, datetime):
        raise StoreInputError(where, f"must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        raise StoreInputError(where, "must be timezone-aware (UTC)")
    at: datetime = value.astimezone(UTC)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def normalized(events: Sequence[MemoryEvent]) -> list[tuple[MemoryEvent, EventPayload]]:
    """Each event checked, in its stored form, with its runwire payload.

    Raises :class:`StoreInputError` naming ``events[i].<field>`` for the first
    event that runwire cannot keep as given.
    """
    out: list[tuple[MemoryEvent, EventPayload]] = []
    for i, event in enumerate(events):
        where = f"events[{i}]"
        if not isinstance(event, MemoryEvent):
            raise StoreInputError(where, f"must be a MemoryEvent, got {type(event).__name__}")
        try:
            kind = MemoryEventType(event.type)
        except ValueError:
            known = ", ".join(t.value for t in MemoryEventType)
            raise StoreInputError(
                f"{where}.type", f"unknown memory event type {event.type!r} (known: {known})"
            ) from None
        at = _timestamp(event.timestamp, f"{where}.timestamp")
        if not isinstance(event.data, Mapping):
            raise StoreInputError(f"{where}.data", "must be a JSON object")
        try:
            data = jsonvalues.canonical(dict(event.data), f"{where}.data")
        except jsonvalues.JsonValueError as e:
            # The message starts with the place: "<where>[.path] is ..." or "<where>: ...".
            text = str(e)
            field = re.split(r"[: ]", text, maxsplit=1)[0]
            raise StoreInputError(field, f"not JSON: {text}") from None
        required, optional = FIELDS[kind]
        for name in sorted(set(data) - required - optional):
            raise StoreInputError(
                f"{where}.data.{name}",
                f"runwire keeps no such field for {kind.value} (fields: "
                f"{', '.join(sorted(required | optional))})",
            )
        for name in sorted(required - set(data)):
            raise StoreInputError(f"{where}.data.{name}", f"required for {kind.value}")
        labels = dict(event.labels)
        for key, value in labels.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise StoreInputError(f"{where}.labels", "keys and values must be text")
        payload = _payload(kind, data, f"{where}.data")
        probe = _created(i, payload, run_id="probe", occurred_at=at, labels=labels)
        stored = memory_events([probe])[0]
        if kind is MemoryEventType.TOOL_RESULT:  # read back, the name is the call's
            stored = replace(stored, data={**stored.data, "tool_name": data["tool_name"]})
        out.append((stored, payload))
    return out


_DATA_FIELDS = {
    "parts": "message",
    "text": "message",
    "input": "payload",
    "content": "result",
    "id": "tool_call_id",
    "tool_use_id": "tool_call_id",
    "name": "tool_name",
}
"""The memory-event data field of a runwire payload field, for error messages."""


def _created(i: int, payload: EventPayload, **envelope: Any) -> Event:
    """The run event of the ``i``-th memory event; a refusal (a limit, a model rule)
    is named in memory-event terms."""
    try:
        return Event.create(payload, producer=PRODUCER, **envelope)
    except (InputError, ValidationError) as e:
        if isinstance(e, InputError):
            where, reason = e.field, e.reason
        else:
            first = e.errors()[0]
            where, reason = ".".join(str(p) for p in first["loc"]), first["msg"]
        head, _, rest = where.removeprefix("payload.").partition(".")
        name, bracket, tail = head.partition("[")
        if name == "parts":  # a memory event's message is one part
            bracket = tail = ""
        if where.startswith("payload."):
            where = f"data.{_DATA_FIELDS.get(name, name)}{bracket}{tail}"
            where += f".{rest}" if rest else ""
        raise StoreInputError(f"events[{i}].{where}", reason) from None


def event_key(kind: MemoryEventType, payload: EventPayload, at: datetime, n: int) -> str:
    """The key naming an event within its run (see the module contract)."""
    if isinstance(payload, ToolUse):
        return f"tool_call:{payload.id}"
    if isinstance(payload, ToolResult):
        return f"tool_result:{payload.tool_use_id}"
    return f"memory:{kind.value}:{int(at.timestamp() * 1000)}:{n}"


def runwire_events(
    run_id: str,
    checked: Sequence[tuple[MemoryEvent, EventPayload]],
    *,
    agent_id: str,
    session_id: str | None = None,
    turn_id: str | None = None,
    user_id: str | None = None,
) -> list[Event]:
    """The runwire events of checked memory events (ids from their keys)."""
    out: list[Event] = []
    seen: dict[tuple[str, datetime], int] = {}
    for i, (event, payload) in enumerate(checked):
        kind = MemoryEventType(event.type)
        n = seen.get((kind.value, event.timestamp), 0)
        seen[(kind.value, event.timestamp)] = n + 1
        key = event_key(kind, payload, event.timestamp, n)
        out.append(
            _created(
                i,
                payload,
                run_id=run_id,
                session_id=session_id,
                agent_id=agent_id,
                turn_id=turn_id,
                user_id=user_id,
                labels=dict(event.labels),
                occurred_at=event.timestamp,
                event_id=ids.deterministic_event_id(run_id, key, 0),
            )
        )
    return out


def _memory_event(event: Event, names: dict[str, str]) -> list[MemoryEvent]:
    p = event.payload
    at, labels = event.occurred_at, dict(event.labels)
    if isinstance(p, UserMessage):
        return [
            MemoryEvent(MemoryEventType.USER_MESSAGE, at, {"message": t}, labels) for t in p.parts
        ]
    if isinstance(p, AssistantText):
        return [MemoryEvent(MemoryEventType.ASSISTANT_MESSAGE, at, {"message": p.text}, labels)]
    if isinstance(p, PlannerNote):
        return [MemoryEvent(MemoryEventType.PLANNER_NOTE, at, {"note": p.text}, labels)]
    if isinstance(p, ToolUse):
        names[p.id] = p.name
        data: dict[str, Any] = {"tool_call_id": p.id, "tool_name": p.name}
        if p.input:
            data["payload"] = p.input
        return [MemoryEvent(MemoryEventType.TOOL_CALL, at, data, labels)]
    if isinstance(p, ToolResult):
        data = {"tool_call_id": p.tool_use_id, "tool_name": names.get(p.tool_use_id, "")}
        if p.is_error:
            content = p.content
            data["error_message"] = (
                content if isinstance(content, str) else jsonvalues.dumps_text(content)
            )
        else:
            data["result"] = p.content
        return [MemoryEvent(MemoryEventType.TOOL_RESULT, at, data, labels)]
    if isinstance(p, Thinking):
        data = {}
        if p.text is not None:
            data["text"] = p.text
        if p.signature is not None:
            data["signature"] = p.signature
        if p.redacted is not None:
            data["redacted"] = base64.b64encode(p.redacted).decode()
        if p.index:
            data["content_index"] = p.index
        if not p.final:
            data["final"] = False
        return [MemoryEvent(MemoryEventType.THINKING, at, data, labels)]
    return []


def memory_events(events: Iterable[Event]) -> list[MemoryEvent]:
    """The memory events of a run's runwire events (in log order)."""
    names: dict[str, str] = {}
    out: list[MemoryEvent] = []
    for event in events:
        out.extend(_memory_event(event, names))
    return out


def build_messages_from_events(
    events: Iterable[MemoryEvent], run_id: str | None = None
) -> list[Message]:
    """The canonical, provider-ready messages of a run's memory events.

    Planner notes make no message (they are never sent to a model); a
    sequence that breaks a transcript rule raises
    :class:`~runwire.transcript.errors.LedgerError` naming the rule.
    """
    run = run_id or "memory"
    checked = normalized(list(events))
    return ledger_messages(runwire_events(run, checked, agent_id="memory"), run)
