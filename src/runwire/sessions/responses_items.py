"""OpenAI Responses API input items (what the Agents SDK stores) <-> runwire messages.

Items -> messages (:func:`items_to_messages`):

- ``{"role": "user", "content": text | [input_text...]}`` -> user text;
  ``role: "assistant"`` (``type: "message"``, ``output_text`` / ``refusal``
  parts) -> assistant text; ``role: "system" | "developer"`` -> instructions
  (returned apart: a transcript holds user and assistant messages only);
- ``function_call`` / ``custom_tool_call`` -> tool_use (``call_id``, ``name``,
  the JSON ``arguments``; JSON that is not an object is kept as
  ``{"arguments": value}``, and text that is not JSON, or JSON nested deeper
  than a tool_use input may be (:data:`~runwire.transcript.depth.MAX_VALUE_DEPTH`),
  as ``{"arguments": text}``); ``function_call_output`` /
  ``custom_tool_call_output`` -> tool_result;
- consecutive items of one side form one message (a tool result after user
  text starts a message of its own, since results come first);
- ``reasoning`` items (OpenAI's encrypted reasoning, which no other provider
  takes back) are skipped and counted; other items runwire cannot keep
  (images, files, hosted tool calls...) are refused naming the item, unless
  ``skip_unsupported`` (then skipped and counted).

Messages -> items (:func:`messages_to_items`): user text ->
``{"role": "user", "content": ...}``, assistant text ->
``{"role": "assistant", "content": ...}``, tool_use -> ``function_call``,
tool_result -> ``function_call_output`` (JSON content as JSON text); thinking
is left out (it is not OpenAI's to take back).

JSON text both ways (``arguments``, tool output) is read and written by
:mod:`runwire.contract.jsonvalues`: numbers keep every digit (docs/json-numbers.md).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from runwire.contract import jsonvalues
from runwire.contract.events import EventPayload
from runwire.contract.limits import MAX_ID_CHARS, text_problem
from runwire.memory.checks import InputError
from runwire.sessions.content import to_message
from runwire.transcript.depth import MAX_VALUE_DEPTH, deeper_than
from runwire.transcript.ledger import payloads_for_message
from runwire.transcript.messages import Message, Part, TextPart, ToolResultPart, ToolUsePart

__all__ = [
    "MAX_ITEM_DEPTH",
    "Converted",
    "canonical_payloads",
    "items_to_messages",
    "json_problem",
    "messages_to_items",
]

_TEXT_PARTS = {"input_text", "output_text", "text"}

MAX_ITEM_DEPTH = MAX_VALUE_DEPTH
"""The most nested lists and objects an item may have (the item itself is 1): the
transcript cache keeps an item a few levels down in its run's state, and a tool
output's value (one level down in its item) in the run's body, where a tool
part's value may nest :data:`~runwire.transcript.depth.MAX_VALUE_DEPTH` levels:
the same budget, so whatever item is accepted is read back by every reader.
Far beyond any Responses API item."""

# Lone surrogates: Python text, but not UTF-8, so no event can carry them.
_SURROGATE = re.compile("[\ud800-\udfff]")
_SKIPPED_ALWAYS = {"reasoning"}


@dataclass(slots=True)
class Converted:
    """Messages (each with the name of its first item), instructions, skipped kinds."""

    messages: list[tuple[Message, str]] = field(default_factory=list)
    system: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Group:
    side: str  # "user" | "assistant"
    parts: list[Part]
    first: str


def _text_of(content: Any, where: str, skipped: Counter[str], skip: bool) -> list[str]:
    if isinstance(content, str):
        return [content] if content else []
    if not isinstance(content, list):
        raise InputError(f"{where}.content", "neither text nor a list of parts")
    out: list[str] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
            if part["text"]:
                out.append(part["text"])
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            out.append(part["refusal"])
        elif skip:
            skipped[f"content:{kind}"] += 1
        else:
            raise InputError(
                f"{where}.content[{i}]",
                f"a {kind!r} part has no place in a runwire transcript "
                "(pass skip_unsupported=True to leave such parts out)",
            )
    return out


def _arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, Mapping):
        return dict(raw)  # within the item, so within MAX_VALUE_DEPTH
    try:
        parsed = jsonvalues.loads(raw) if isinstance(raw, str) and raw else {}
    except ValueError:
        return {"arguments": raw}
    value = parsed if isinstance(parsed, dict) else {"arguments": parsed}
    # Text parses up to jsonvalues.MAX_DEPTH (254) levels, a tool_use input may
    # nest MAX_VALUE_DEPTH (200: the stored transcript keeps it a few levels
    # down, runwire.transcript.depth). Deeper JSON is kept as its text, as
    # text that is not JSON is: the item comes back unchanged all the same.
    return {"arguments": raw} if deeper_than(value, MAX_VALUE_DEPTH) else value


def _convert(
    item: Any, where: str, skipped: Counter[str], skip: bool
) -> tuple[str, list[Part]] | None:
    """(side, parts) of one item; side ``system`` for instructions; None when skipped."""
    if not isinstance(item, Mapping):
        raise InputError(where, f"an item is a JSON object, not {type(item).__name__}")
    kind = item.get("type")
    role = item.get("role")
    if role is not None and kind in (None, "message"):
        texts = _text_of(item.get("content"), where, skipped, skip)
        if role in ("system", "developer"):
            return "system", [TextPart(text=t) for t in texts]
        if role not in ("user", "assistant"):
            raise InputError(f"{where}.role", f"unknown role {role!r}")
        return (role, [TextPart(text=t) for t in texts]) if texts else None
    if kind in ("function_call", "custom_tool_call"):
        raw = item.get("arguments") if kind == "function_call" else item.get("input")
        call_id = item.get("call_id")
        if not isinstance(call_id, str) or not isinstance(item.get("name"), str):
            raise InputError(where, f"a {kind} without call_id or name")
        return "assistant", [ToolUsePart(id=call_id, name=item["name"], input=_arguments(raw))]
    if kind in ("function_call_output", "custom_tool_call_output"):
        call_id = item.get("call_id")
        if not isinstance(call_id, str):
            raise InputError(where, f"a {kind} without call_id")
        return "user", [ToolResultPart(tool_use_id=call_id, content=item.get("output"))]
    if kind in _SKIPPED_ALWAYS or skip:
        skipped[str(kind)] += 1
        return None
    raise InputError(
        where,
        f"a {kind!r} item has no place in a runwire transcript "
        "(pass skip_unsupported=True to leave such items out)",
    )


def canonical_payloads(item: Any, where: str) -> list[EventPayload]:
    """The canonical transcript events that stand for one item: none for an item
    with no canonical form (reasoning, hosted tool calls, images, instructions,
    or one runwire cannot read), which is then kept verbatim only."""
    try:
        converted = _convert(item, where, Counter(), True)
    except InputError:
        return []
    if converted is None or converted[0] == "system" or not converted[1]:
        return []
    side, parts = converted
    if any(_tool_id_problem(part) for part in parts):
        # A call id no event can hold (too long, NUL): the item is kept verbatim
        # only, as one runwire cannot read, instead of refusing the batch.
        return []
    try:
        incoming = to_message(side, list(parts), field=where)
    except InputError:
        return []
    return payloads_for_message(incoming.message) if incoming.message is not None else []


def _tool_id_problem(part: Part) -> str | None:
    """Why a tool call's id could not be a canonical event's (the event limits)."""
    if isinstance(part, ToolUsePart):
        return text_problem(part.id, MAX_ID_CHARS)
    if isinstance(part, ToolResultPart):
        return text_problem(part.tool_use_id, MAX_ID_CHARS)
    return None


def json_problem(value: Any, where: str, depth: int = 1) -> tuple[str, str] | None:
    """Where ``value`` stops being JSON runwire can keep (``where`` extended by the
    path) and why; None when it is JSON that survives a round trip unchanged.

    Beyond what JSON refuses: text holding a lone surrogate (not UTF-8) and
    nesting deeper than :data:`MAX_ITEM_DEPTH`.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return _text_problem(value, where, "")
    if isinstance(value, int):
        try:
            str(value)  # Python refuses integers over its digit limit here
        except ValueError:
            return where, f"an integer over {jsonvalues.MAX_INT_DIGITS} digits"
        return None
    if isinstance(value, float | Decimal):
        # Decimal's own test: math.isfinite converts to float, and 1e400 is not inf.
        finite = value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)
        return None if finite else (where, f"{value} is not a JSON number")
    if isinstance(value, list | dict) and depth > MAX_ITEM_DEPTH:
        return where, f"nested deeper than {MAX_ITEM_DEPTH} lists and objects"
    if isinstance(value, list):
        for i, inner in enumerate(value):
            found = json_problem(inner, f"{where}[{i}]", depth + 1)
            if found:
                return found
        return None
    if isinstance(value, dict):
        for key, inner in value.items():
            if not isinstance(key, str):
                return where, f"the key {key!r} is not text"
            found = _text_problem(key, where, f"the key {key!r} ")
            if found:
                return found
            found = json_problem(inner, f"{where}.{key}", depth + 1)
            if found:
                return found
        return None
    return where, f"a {type(value).__name__} is not JSON"


def _text_problem(text: str, where: str, what: str) -> tuple[str, str] | None:
    if text.isascii():
        return None
    bad = _SURROGATE.search(text)
    if bad is None:
        return None
    return where, (
        f"{what}holds a lone surrogate (U+{ord(bad.group()):04X}) at {bad.start()}, "
        "which is not UTF-8 text"
    )


def _reorders(group: _Group, parts: Sequence[Part]) -> bool:
    """True when ``parts`` would go before text already in ``group`` (a user message
    holds its tool results first): they then start a message of their own."""
    return isinstance(parts[0], ToolResultPart) and any(
        isinstance(p, TextPart) for p in group.parts
    )


def items_to_messages(
    items: Sequence[tuple[str, Any]], *, skip_unsupported: bool = False
) -> Converted:
    """Convert ``(name, item)`` pairs (the name is used in errors); see the module doc."""
    skipped: Counter[str] = Counter()
    groups: list[_Group] = []
    out = Converted()
    for where, item in items:
        converted = _convert(item, where, skipped, skip_unsupported)
        if converted is None:
            continue
        side, parts = converted
        if side == "system":
            out.system += [p.text for p in parts if isinstance(p, TextPart)]
            continue
        last = groups[-1] if groups else None
        if last is not None and last.side == side and not _reorders(last, parts):
            last.parts += parts
        else:
            groups.append(_Group(side, list(parts), where))
    for group in groups:
        incoming = to_message(group.side, group.parts, field=group.first)
        assert incoming.message is not None
        out.messages.append((incoming.message, group.first))
    out.skipped = dict(skipped)
    return out


def _content(value: Any) -> str:
    return value if isinstance(value, str) else jsonvalues.dumps_text(value)


def messages_to_items(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Responses API input items for ``messages`` (see the module doc)."""
    items: list[dict[str, Any]] = []
    for message in messages:
        for part in message.parts:
            if isinstance(part, TextPart):
                items.append({"role": message.role, "content": part.text})
            elif isinstance(part, ToolUsePart):
                items.append(
                    {
                        "type": "function_call",
                        "call_id": part.id,
                        "name": part.name,
                        "arguments": jsonvalues.dumps_text(part.input),
                    }
                )
            elif isinstance(part, ToolResultPart):
                items.append(
                    {
                        "type": "function_call_output",
                        "call_id": part.tool_use_id,
                        "output": _content(part.content),
                    }
                )
    return items
