"""Importing the OpenAI Agents SDK's SQLiteSession files (built with the SDK itself)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runwire.sessions import AsyncSession, InMemoryBackend, InputError
from runwire.sessions.agents_sqlite import import_agents_sqlite, read_agents_sqlite
from runwire.sessions.responses_items import items_to_messages
from runwire.transcript.messages import ToolResultPart, ToolUsePart
from tests.contract.sessions import roles_and_text
from tests.unit.sessions.agents_data import WEATHER, sdk_file


async def test_sessions_come_in_with_turns_tools_and_instructions(tmp_path: Path) -> None:
    path = await sdk_file(
        tmp_path, {"conv-1": WEATHER, "conv-2": [{"role": "user", "content": "hi"}]}
    )
    backend = InMemoryBackend()
    results = await import_agents_sqlite(backend, path, user_id="alice")
    assert [r.session_id for r in results] == ["conv-1", "conv-2"]
    assert results[0].skipped == {"reasoning": 1}
    s = await AsyncSession("conv-1", user_id="alice", backend=backend).open()
    messages = await s.get_messages()
    assert roles_and_text(messages) == [
        ("user", "What's the weather in Paris?"),
        ("assistant", "<tool_use>"),
        ("user", "<tool_result>"),
        ("assistant", "Sunny, 21°C."),
        ("user", "Thanks!"),
        ("assistant", "You're welcome."),
    ]
    call = messages[1].parts[0]
    assert isinstance(call, ToolUsePart)
    assert (call.id, call.name, call.input) == (
        "call_1",
        "get_weather",
        {"city": "Paris"},
    )
    result = messages[2].parts[0]
    assert isinstance(result, ToolResultPart)
    assert result.content == "sunny, 21C"
    assert await s.get("system") == "Be brief."
    assert await s.get("source_session_id") == "conv-1"
    assert len(await backend.history("conv-1")) == 2, "one run per turn"
    assert len(await s.get_messages(limit=1)) == 2
    again = await import_agents_sqlite(backend, path, user_id="alice")
    assert [r.created for r in again] == [False, False]
    assert len(await backend.history("conv-1")) == 2


async def test_unsupported_items_are_named_or_skipped(tmp_path: Path) -> None:
    items = [
        {"role": "user", "content": "look"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {}},
        {"role": "assistant", "content": "found it"},
    ]
    path = await sdk_file(tmp_path, {"s": items})
    with pytest.raises(InputError) as e:
        read_agents_sqlite(path)
    assert e.value.field == "agent_messages[id=2]"
    (found,) = read_agents_sqlite(path, skip_unsupported=True)
    assert found.skipped == {"web_search_call": 1}
    backend = InMemoryBackend()
    with pytest.raises(InputError):
        await import_agents_sqlite(backend, path)
    assert await backend.describe("s") is None, "nothing written"


async def test_custom_tables_and_custom_tool_calls(tmp_path: Path) -> None:
    items = [
        {"role": "user", "content": "run it"},
        {"type": "custom_tool_call", "call_id": "c9", "name": "shell", "input": "ls -l"},
        {"type": "custom_tool_call_output", "call_id": "c9", "output": "total 0"},
    ]
    path = await sdk_file(tmp_path, {"s": items}, sessions_table="t_s", messages_table="t_m")
    with pytest.raises(InputError) as e:
        read_agents_sqlite(path)
    assert e.value.field == "messages_table"
    (found,) = read_agents_sqlite(path, sessions_table="t_s", messages_table="t_m")
    (run,) = found.document["runs"]
    assert run["messages"][1]["parts"][0]["input"] == {"arguments": "ls -l"}


async def test_not_a_sqlite_file(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("hello")
    with pytest.raises(InputError) as e:
        read_agents_sqlite(bogus)
    assert e.value.field == "path"
    with pytest.raises(InputError) as e:
        read_agents_sqlite(tmp_path / "missing.db")
    assert e.value.field == "path"
    with pytest.raises(InputError) as e:
        read_agents_sqlite(bogus, messages_table="x; DROP TABLE y")
    assert e.value.field == "messages_table"


def test_user_text_then_a_result_is_two_messages() -> None:
    """A result after user text cannot join it (results go first): a message of its own."""
    converted = items_to_messages(
        [
            ("i0", {"role": "user", "content": "hi"}),
            ("i1", {"type": "function_call_output", "call_id": "x", "output": "late"}),
        ]
    )
    assert [m.parts[0].kind for m, _ in converted.messages] == ["text", "tool_result"]
