"""Importing the sessions of the OpenAI Agents SDK's ``SQLiteSession`` files.

The file's schema, as ``agents.memory.sqlite_session.SQLiteSession`` creates
it (table names are constructor arguments; these are the defaults)::

    agent_sessions(session_id TEXT PRIMARY KEY, created_at, updated_at)
    agent_messages(id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT,
                   message_data TEXT,   -- json.dumps of one Responses API input item
                   created_at)

A session's history is its ``agent_messages`` rows in ``id`` order; the
items become messages as :mod:`runwire.sessions.responses_items` says, and
each user message with text starts a new run (a turn).

Every session becomes an export document (:mod:`runwire.sessions.export`)
imported with the same rules: checked whole first, idempotent (importing the
same file twice changes nothing), new ids where the SDK's session id is taken.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runwire.memory.checks import InputError
from runwire.sessions.export import FORMAT, VERSION, ImportResult, import_session, parse_document
from runwire.sessions.names import SYSTEM_KEY
from runwire.sessions.protocol import SessionBackend
from runwire.sessions.responses_items import items_to_messages

__all__ = ["AgentsSession", "import_agents_sqlite", "read_agents_sqlite"]

SOURCE = "openai-agents-sqlite"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAMESPACE = uuid.UUID("5d1c8f0e-2a7b-4e63-8c9d-3b4a6e1f0a27")


def _where(table: str, row: int) -> str:
    return f"{table}[id={row}]"


@dataclass(frozen=True, slots=True)
class AgentsSession:
    """One SDK session read from the file, as an export document."""

    session_id: str
    document: dict[str, Any]
    items: int
    skipped: dict[str, int] = field(default_factory=dict)


def _document(
    session_id: str,
    created_at: str | None,
    rows: Sequence[tuple[int, str]],
    *,
    table: str,
    skip: bool,
) -> AgentsSession:
    items: list[tuple[str, Any]] = []
    for row_id, data in rows:
        where = _where(table, row_id)
        try:
            items.append((where, json.loads(data)))
        except ValueError as e:
            raise InputError(f"{where}.message_data", f"not JSON ({e})") from None
    converted = items_to_messages(items, skip_unsupported=skip)
    system = converted.system
    runs: list[dict[str, Any]] = []
    for message, where in converted.messages:
        starts_turn = message.role == "user" and not message.tool_results()
        if starts_turn or not runs:
            run_id = str(uuid.uuid5(_NAMESPACE, f"{session_id}/{where}"))
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
    return AgentsSession(session_id, document, len(rows), converted.skipped)


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
