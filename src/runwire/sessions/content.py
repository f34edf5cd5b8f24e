"""What ``add_message`` accepts, checked and turned into canonical messages (pure).

Contract of :func:`to_message` / :func:`to_messages`:
- Roles: ``user``, ``assistant``, ``tool`` (tool results; stored as a user
  message of tool_result parts, as every provider wants them) and
  ``system`` (instructions: kept as the session's ``system`` metadata, since
  a transcript holds only user and assistant messages). Any other role is
  refused naming ``role``.
- Content: text, one part, or a list of parts. A part is a
  :mod:`runwire.transcript.messages` part object, a dict in its JSON form
  (``{"kind": "text", "text": ...}``), plain text, or for the ``tool`` role a
  dict ``{"tool_use_id", "content", "is_error"}``.
- A message must be one the ledger keeps exactly as given: user messages hold
  tool results then text; assistant messages hold thinking (signed or
  redacted), then text, then tool_use; no empty text; tool input an object
  and tool results JSON. Anything else is refused naming the field
  (``content[1].kind``), before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from runwire.memory.checks import InputError, require_json
from runwire.transcript.messages import (
    Message,
    Part,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolUsePart,
)

__all__ = ["ROLES", "Incoming", "require_json", "to_message", "to_messages"]

ROLES = ("user", "assistant", "tool", "system")
Role = Literal["user", "assistant", "tool", "system"]

_PART = TypeAdapter[Part](Part)
_ASSISTANT_RANK: dict[type[Any], int] = {ThinkingPart: 0, TextPart: 1, ToolUsePart: 2}
_RANK_NAMES = {0: "thinking", 1: "text", 2: "tool_use"}


@dataclass(frozen=True, slots=True)
class Incoming:
    """One normalized input: a transcript message, or system instructions."""

    message: Message | None = None
    system: str | None = None


def _part(raw: Any, role: str, field: str) -> Part:
    if isinstance(raw, TextPart | ThinkingPart | ToolUsePart | ToolResultPart):
        return raw
    if isinstance(raw, str):
        return TextPart(text=raw)
    if not isinstance(raw, Mapping):
        raise InputError(
            field, f"a part is text, a part object or a dict, not {type(raw).__name__}"
        )
    data = dict(raw)
    if "kind" not in data and role == "tool":
        data["kind"] = "tool_result"
    if "kind" not in data:
        raise InputError(f"{field}.kind", "missing (one of text, thinking, tool_use, tool_result)")
    if data["kind"] == "thinking" and isinstance(data.get("redacted"), str):
        # JSON form: redacted bytes travel as base64 text.
        try:
            return _PART.validate_json(json.dumps(data))
        except ValidationError as e:
            raise _named(e, field) from None
    try:
        return _PART.validate_python(data)
    except ValidationError as e:
        raise _named(e, field) from None


def _named(error: ValidationError, field: str) -> InputError:
    first = error.errors()[0]
    loc = [str(x) for x in first["loc"] if x not in ("text", "thinking", "tool_use", "tool_result")]
    where = ".".join([field, *loc[1:]]) if len(loc) > 1 else field
    if first["type"] == "union_tag_invalid":
        where = f"{field}.kind"
    return InputError(where, first["msg"])


def _parts(content: Any, role: str, field: str) -> list[tuple[Part, str]]:
    """The parts of ``content``, each with the name of its field."""
    if isinstance(content, str | Mapping) or not isinstance(content, Sequence):
        return [(_part(content, role, field), field)]
    if isinstance(content, bytes | bytearray):
        raise InputError(field, "bytes are not content; give text or parts")
    return [(_part(raw, role, f"{field}[{i}]"), f"{field}[{i}]") for i, raw in enumerate(content)]


def _check_user(parts: list[tuple[Part, str]], *, tool: bool) -> None:
    seen_text = False
    for part, where in parts:
        if isinstance(part, ToolResultPart):
            if seen_text:
                raise InputError(where, "a tool_result must come before text in a user message")
            if not part.tool_use_id:
                raise InputError(f"{where}.tool_use_id", "empty")
            require_json(part.content, f"{where}.content")
        elif isinstance(part, TextPart):
            if tool:
                raise InputError(where, "a tool message holds tool results only")
            seen_text = True
        else:
            raise InputError(
                f"{where}.kind", f"{part.kind} is not allowed in a user or tool message"
            )


def _check_assistant(parts: list[tuple[Part, str]]) -> None:
    rank = 0
    for part, where in parts:
        if isinstance(part, ToolResultPart):
            raise InputError(f"{where}.kind", "tool_result belongs to a tool (or user) message")
        mine = _ASSISTANT_RANK[type(part)]
        if mine < rank:
            raise InputError(
                where,
                f"{part.kind} after {_RANK_NAMES[rank]}: an assistant message is "
                "thinking, then text, then tool_use",
            )
        rank = mine
        if isinstance(part, ThinkingPart) and not part.complete:
            raise InputError(
                f"{where}.signature",
                "thinking needs its provider signature (or redacted bytes) to be kept",
            )
        if isinstance(part, ToolUsePart):
            if not part.id:
                raise InputError(f"{where}.id", "empty")
            if not part.name:
                raise InputError(f"{where}.name", "empty")
            require_json(part.input, f"{where}.input")


def to_message(
    role: Any, content: Any, *, field: str = "content", role_field: str = "role"
) -> Incoming:
    """Check ``(role, content)`` and turn it into a canonical message (see the module doc)."""
    if role not in ROLES:
        raise InputError(role_field, f"unknown role {role!r} (one of {', '.join(ROLES)})")
    if content is None:
        raise InputError(field, "missing")
    parts = _parts(content, role, field)
    if not parts:
        raise InputError(field, "empty: a message needs at least one part")
    for part, where in parts:
        if isinstance(part, TextPart) and not part.text:
            raise InputError(f"{where}.text", "empty")
    if role == "system":
        if not all(isinstance(p, TextPart) for p, _ in parts):
            raise InputError(field, "system instructions are text only")
        return Incoming(system="\n\n".join(p.text for p, _ in parts if isinstance(p, TextPart)))
    if role == "assistant":
        _check_assistant(parts)
        return Incoming(message=Message(role="assistant", parts=tuple(p for p, _ in parts)))
    _check_user(parts, tool=role == "tool")
    return Incoming(message=Message(role="user", parts=tuple(p for p, _ in parts)))


def _item(item: Any, index: int) -> Incoming:
    field = f"messages[{index}]"
    if isinstance(item, Message):
        return to_message(
            item.role, list(item.parts), field=f"{field}.parts", role_field=f"{field}.role"
        )
    if isinstance(item, tuple) and len(item) == 2:
        return to_message(item[0], item[1], field=f"{field}[1]", role_field=f"{field}[0]")
    if isinstance(item, Mapping):
        body = item.get("content", item.get("parts"))
        name = "content" if "content" in item else "parts"
        return to_message(
            item.get("role"), body, field=f"{field}.{name}", role_field=f"{field}.role"
        )
    raise InputError(
        field,
        f"a message is a Message, a {{'role', 'content'}} dict or a (role, content) pair, not {type(item).__name__}",
    )


def to_messages(items: Any) -> list[Incoming]:
    """:func:`to_message` over a batch; fields are named ``messages[i]...``."""
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Sequence):
        raise InputError("messages", "a list of messages")
    return [_item(item, i) for i, item in enumerate(items)]
