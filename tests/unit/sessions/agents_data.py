"""Agents-SDK session items and SQLite files written by the SDK itself (shared by tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents import SQLiteSession

WEATHER: list[Any] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What's the weather in Paris?"},
    {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA"},
    {
        "type": "function_call",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
        "id": "fc_1",
        "status": "completed",
    },
    {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21C"},
    {
        "type": "message",
        "role": "assistant",
        "id": "msg_1",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Sunny, 21°C.", "annotations": []}],
    },
    {"role": "user", "content": [{"type": "input_text", "text": "Thanks!"}]},
    {
        "type": "message",
        "role": "assistant",
        "id": "msg_2",
        "status": "completed",
        "content": [{"type": "output_text", "text": "You're welcome.", "annotations": []}],
    },
]


async def sdk_file(
    tmp_path: Path,
    sessions: dict[str, list[Any]],
    sessions_table: str = "agent_sessions",
    messages_table: str = "agent_messages",
) -> Path:
    """A SQLiteSession database file written by the Agents SDK itself."""
    path = tmp_path / "agents.db"
    for session_id, items in sessions.items():
        session = SQLiteSession(
            session_id, path, sessions_table=sessions_table, messages_table=messages_table
        )
        await session.add_items(items)
        session.close()
    return path
