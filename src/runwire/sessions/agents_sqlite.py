"""Importing the sessions of the OpenAI Agents SDK's ``SQLiteSession`` files.

The file's schema, as ``agents.memory.sqlite_session.SQLiteSession`` creates
it (table names are constructor arguments; these are the defaults)::

    agent_sessions(session_id TEXT PRIMARY KEY, created_at, updated_at)
    agent_messages(id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT,
                   message_data TEXT,   -- json.dumps of one Responses API input item
                   created_at)

A session's history is its ``agent_messages`` rows in ``id`` order. Items map
to runwire's transcript like this:

- ``{"role": "user", "content": text | [input_text...]}`` -> user text;
  ``role: "assistant"`` (``type: "message"``, ``output_text`` / ``refusal``
  parts) -> assistant text; ``role: "system" | "developer"`` -> the session's
  ``system`` metadata (a transcript holds user and assistant messages only);
- ``function_call`` / ``custom_tool_call`` -> tool_use (``call_id``, ``name``,
  the JSON ``arguments``; text that is not a JSON object is kept as
  ``{"arguments": text}``); ``function_call_output`` /
  ``custom_tool_call_output`` -> tool_result;
- consecutive items of one side form one message; a user message that
  carries text starts a new turn, so a new run;
- ``reasoning`` items are OpenAI's encrypted reasoning, which no other
  provider can take back: skipped and counted. Items runwire cannot keep
  (images, files, hosted tool calls...) are refused naming their row, unless
  ``skip_unsupported`` (then skipped and counted in the result).

Every session becomes an export document (:mod:`runwire.sessions.export`)
imported with the same rules: checked whole first, idempotent (importing the
same file twice changes nothing), new ids where the SDK's session id is taken.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runwire.memory.checks import InputError
from runwire.sessions.api import SYSTEM_KEY
from runwire.sessions.content import to_message
from runwire.sessions.export import FORMAT, VERSION, ImportResult, import_session, parse_document
from runwire.sessions.protocol import SessionBackend
from runwire.transcript.messages import Message, Part, TextPart, ToolResultPart, ToolUsePart

__all__ = ["AgentsSession", "import_agents_sqlite", "read_agents_sqlite"]

SOURCE = "openai-agents-sqlite"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAMESPACE = uuid.UUID("5d1c8f0e-2a7b-4e63-8c9d-3b4a6e1f0a27")
_TEXT_PARTS = {"input_text", "output_text", "text"}
_SKIPPED_ALWAYS = {"reasoning"}


@dataclass(frozen=True, slots=True)
class AgentsSession:
    """One SDK session read from the file, as an export document."""

    session_id: str
    document: dict[str, Any]
    items: int
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Group:
    side: str  # "user" | "assistant"
    parts: list[Part]
    first_row: int


def _where(table: str, row: int) -> str:
    return f"{table}[id={row}]"


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
        return dict(raw)
    try:
        parsed = json.loads(raw) if isinstance(raw, str) and raw else {}
    except ValueError:
        return {"arguments": raw}
    return parsed if isinstance(parsed, dict) else {"arguments": parsed}


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
    if kind in _SKIPPED_ALWAYS:
        skipped[str(kind)] += 1
        return None
    if skip:
        skipped[str(kind)] += 1
        return None
    raise InputError(
        where,
        f"a {kind!r} item has no place in a runwire transcript "
        "(pass skip_unsupported=True to leave such items out)",
    )


def _reorders(group: _Group, parts: Sequence[Part]) -> bool:
    """True when ``parts`` would go before text already in ``group`` (a user message
    holds its tool results first): they then start a message of their own."""
    return isinstance(parts[0], ToolResultPart) and any(
        isinstance(p, TextPart) for p in group.parts
    )


def _messages(groups: Sequence[_Group], table: str) -> list[tuple[Message, int]]:
    out: list[tuple[Message, int]] = []
    for group in groups:
        incoming = to_message(group.side, group.parts, field=_where(table, group.first_row))
        assert incoming.message is not None
        out.append((incoming.message, group.first_row))
    return out


def _document(
    session_id: str,
    created_at: str | None,
    rows: Sequence[tuple[int, str]],
    *,
    table: str,
    skip: bool,
) -> AgentsSession:
    skipped: Counter[str] = Counter()
    groups: list[_Group] = []
    system: list[str] = []
    for row_id, data in rows:
        where = _where(table, row_id)
        try:
            item = json.loads(data)
        except ValueError as e:
            raise InputError(f"{where}.message_data", f"not JSON ({e})") from None
        converted = _convert(item, where, skipped, skip)
        if converted is None:
            continue
        side, parts = converted
        if side == "system":
            system += [p.text for p in parts if isinstance(p, TextPart)]
            continue
        last = groups[-1] if groups else None
        if last is not None and last.side == side and not _reorders(last, parts):
            last.parts += parts
        else:
            groups.append(_Group(side, list(parts), row_id))
    runs: list[dict[str, Any]] = []
    for message, row_id in _messages(groups, table):
        starts_turn = message.role == "user" and not message.tool_results()
        if starts_turn or not runs:
            run_id = str(uuid.uuid5(_NAMESPACE, f"{session_id}/{row_id}"))
            runs.append({"run_id": run_id, "messages": []})
        runs[-1]["messages"].append(json.loads(message.model_dump_json()))
    metadata: dict[str, Any] = {"source": SOURCE, "source_session_id": session_id}
    if system:
        metadata[SYSTEM_KEY] = "\n\n".join(system)
    document: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "session": {"session_id": session_id, "metadata": metadata},
        "runs": runs,
    }
    if created_at:
        document["session"]["created_at"] = created_at.replace(" ", "T") + "Z"
    return AgentsSession(session_id, document, len(rows), dict(skipped))


def _table(name: str, field: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise InputError(field, f"{name!r} is not a table name")
    return name


def read_agents_sqlite(
    path: str | Path,
    *,
    sessions_table: str = "agent_sessions",
    messages_table: str = "agent_messages",
    session_ids: Sequence[str] | None = None,
    skip_unsupported: bool = False,
) -> list[AgentsSession]:
    """Every session of the file (or those named), as export documents, read-only."""
    sessions_table = _table(sessions_table, "sessions_table")
    messages_table = _table(messages_table, "messages_table")
    file = Path(path)
    if not file.is_file():
        raise InputError("path", f"{file} is not a file")
    try:
        conn = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise InputError("path", f"{file} cannot be opened as SQLite ({e})") from None
    try:
        try:
            names = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
        except sqlite3.DatabaseError as e:
            raise InputError("path", f"{file} is not a SQLite database ({e})") from None
        if messages_table not in names:
            raise InputError("messages_table", f"{file} has no table {messages_table!r}")
        created: dict[str, str] = {}
        if sessions_table in names:
            created = dict(conn.execute(f"SELECT session_id, created_at FROM {sessions_table}"))
        rows: dict[str, list[tuple[int, str]]] = {}
        for sid, row_id, data in conn.execute(
            f"SELECT session_id, id, message_data FROM {messages_table} ORDER BY id"
        ):
            rows.setdefault(sid, []).append((row_id, data))
    finally:
        conn.close()
    wanted = list(session_ids) if session_ids is not None else list(rows)
    out: list[AgentsSession] = []
    for sid in wanted:
        if sid not in rows:
            raise InputError("session_ids", f"{file} has no messages of session {sid!r}")
        out.append(
            _document(sid, created.get(sid), rows[sid], table=messages_table, skip=skip_unsupported)
        )
    return out


async def import_agents_sqlite(
    backend: SessionBackend,
    path: str | Path,
    *,
    user_id: str | None = None,
    tenant: str | None = None,
    keep_ids: bool = False,
    skip_unsupported: bool = False,
    sessions_table: str = "agent_sessions",
    messages_table: str = "agent_messages",
    session_ids: Sequence[str] | None = None,
) -> list[ImportResult]:
    """Import the file's sessions for ``user_id``; every session is read and
    checked before the first is written."""
    found = read_agents_sqlite(
        path,
        sessions_table=sessions_table,
        messages_table=messages_table,
        session_ids=session_ids,
        skip_unsupported=skip_unsupported,
    )
    for s in found:
        parse_document(s.document)
    return [
        await import_session(
            backend,
            s.document,
            user_id=user_id,
            tenant=tenant,
            keep_ids=keep_ids,
            skipped=s.skipped,
        )
        for s in found
    ]
