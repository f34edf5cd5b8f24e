"""``RunwireSession`` gives back what the Agents SDK handed it, beside ``SQLiteSession``.

Every read here is from a fresh backend (the shared ones closed), so nothing is
served from the writer's memory; ``SQLiteSession`` given the same items is the
reference: equal values, same types, same key order, ``-0.0`` keeping its sign.
"""

from __future__ import annotations

import asyncio
import copy
import math
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from agents import SQLiteSession, set_tracing_disabled

from runwire.sessions.embedded import projectors_running
from runwire.sessions.openai_agents import (
    BranchError,
    ItemNotJSONError,
    RunwireSession,
    close_shared_backends,
)
from runwire.sessions.responses_items import MAX_ITEM_DEPTH
from runwire.settings import Settings


@pytest_asyncio.fixture(loop_scope="session")
async def sessions(settings: Settings) -> AsyncIterator[Settings]:
    set_tracing_disabled(True)
    async with projectors_running(settings):
        try:
            yield settings
        finally:
            await asyncio.to_thread(close_shared_backends)


def shape(value: Any) -> Any:
    """``value`` with its types, key order and the sign of zero spelled out."""
    if isinstance(value, dict):
        return ["dict", [(k, shape(v)) for k, v in value.items()]]
    if isinstance(value, list):
        return ["list", [shape(v) for v in value]]
    if isinstance(value, float):
        return ["float", repr(value), math.copysign(1.0, value)]
    return [type(value).__name__, repr(value)]


async def fresh(session: RunwireSession, settings: Settings) -> RunwireSession:
    """The same session in what stands for another process: nothing held in memory."""
    await asyncio.to_thread(close_shared_backends)
    return RunwireSession(session.session_id, user_id="alice", settings=settings)


def nested(depth: int) -> dict[str, Any]:
    """An item of ``depth`` nested objects, itself included."""
    value: dict[str, Any] = {"type": "deep"}
    for _ in range(depth - 1):
        value = {"type": "deep", "v": value}
    return value


KINDS: list[Any] = [
    {"role": "user", "content": "hi"},
    {
        "role": "user",
        "content": [
            {"type": "input_text", "text": "look"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "high"},
            {"type": "input_file", "file_data": "data:application/pdf;base64,JV", "filename": "a"},
        ],
    },
    {"role": "developer", "content": [{"type": "input_text", "text": "be brief"}]},
    {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [{"type": "summary_text", "text": "s"}],
        "encrypted_content": "gAAA==",
        "content": None,
    },
    {
        "type": "function_call",
        "call_id": "c1",
        "name": "f",
        "id": "fc_1",
        "status": "completed",
        "arguments": '{"x": 1e308, "y": -0.0, "z": 18446744073709551617}',
    },
    {
        "type": "function_call_output",
        "call_id": "c1",
        "output": [
            {"type": "input_text", "text": "out"},
            {"type": "input_image", "image_url": "u"},
        ],
    },
    {"type": "function_call", "call_id": "c2", "name": "g", "arguments": ""},
    {"type": "function_call_output", "call_id": "c2", "output": "plain"},
    {
        "type": "web_search_call",
        "id": "ws",
        "status": "completed",
        "action": {"type": "search", "query": "q", "sources": None},
    },
    {
        "type": "file_search_call",
        "id": "fs",
        "queries": ["a"],
        "status": "completed",
        "results": [{"file_id": "f", "score": 0.1, "attributes": {"k": 1.5}}],
    },
    {
        "type": "computer_call",
        "id": "cc",
        "call_id": "cc1",
        "status": "completed",
        "action": {"type": "click", "x": 1, "y": 2, "button": "left"},
        "pending_safety_checks": [],
    },
    {
        "type": "computer_call_output",
        "call_id": "cc1",
        "acknowledged_safety_checks": [],
        "output": {"type": "computer_screenshot", "image_url": "data:image/png;base64,AA"},
    },
    {
        "type": "mcp_list_tools",
        "id": "ml",
        "server_label": "s",
        "tools": [{"name": "t", "input_schema": {"type": "object"}}],
    },
    {
        "type": "mcp_approval_request",
        "id": "ma",
        "arguments": "{}",
        "name": "t",
        "server_label": "s",
    },
    {"type": "mcp_approval_response", "approval_request_id": "ma", "approve": True},
    {
        "type": "mcp_call",
        "id": "mc",
        "arguments": "{}",
        "name": "t",
        "server_label": "s",
        "output": "o",
        "error": None,
    },
    {"type": "custom_tool_call", "call_id": "ct", "name": "grammar", "input": "not json"},
    {"type": "custom_tool_call_output", "call_id": "ct", "output": "ok"},
    {
        "type": "image_generation_call",
        "id": "ig",
        "result": "iVBORw0KGgo=" * 50,
        "status": "completed",
    },
    {
        "type": "local_shell_call",
        "id": "ls",
        "call_id": "lsc",
        "status": "completed",
        "action": {"type": "exec", "command": ["ls", "-la"], "env": {}},
    },
    {"type": "local_shell_call_output", "id": "lsc", "output": "total 0"},
    {"type": "compaction", "id": "cmp", "encrypted_content": "zzz"},
    {
        "type": "message",
        "id": "msg",
        "role": "assistant",
        "status": "completed",
        "content": [
            {
                "type": "output_text",
                "text": "ans",
                "annotations": [],
                "logprobs": [{"token": "a", "logprob": -0.0, "bytes": [97], "top_logprobs": []}],
            },
            {"type": "refusal", "refusal": "no"},
        ],
    },
    {
        "type": "a_kind_no_one_has_seen",
        "zeta": 1,
        "alpha": 2,
        "": "empty key",
        "a.b": {"$x": [2.5, -0.0, 1e308, 5e-324, 2**63 + 5, -(2**70), 10**30]},
    },
    {"role": "assistant", "content": "\u0000 NUL, \u2028, \U0001f600, \ufeff"},
    {"z": 1, "a": 2, "m": {"yy": 1, "b": 2}},
    "an item that is not an object",
]


async def test_every_kind_comes_back_as_sqlite_session_gives_it(sessions: Settings) -> None:
    reference = SQLiteSession("reference")
    await reference.add_items(copy.deepcopy(KINDS))
    expected = await reference.get_items()
    session = RunwireSession(user_id="alice", settings=sessions)
    await session.add_items(copy.deepcopy(KINDS[:4]))
    for item in KINDS[4:]:
        await session.add_items([copy.deepcopy(item)])

    again = await fresh(session, sessions)
    got = await again.get_items()
    assert got == expected
    assert [shape(i) for i in got] == [shape(i) for i in expected]
    for limit in (1, 5, len(KINDS) + 3):
        assert await again.get_items(limit=limit) == await reference.get_items(limit=limit)
    for _ in range(4):  # items of no canonical form and of one, across batches
        assert shape(await again.pop_item()) == shape(await reference.pop_item())
    again = await fresh(session, sessions)
    assert await again.get_items() == await reference.get_items()
    await again.clear_session()
    assert await (await fresh(session, sessions)).get_items() == []


@pytest.mark.parametrize(
    ("item", "field", "why"),
    [
        ({"role": "user", "content": "a\ud800b"}, "items[1].content", "lone surrogate (U+D800)"),
        ({"type": "x", "k\udfff": 1}, "items[1]", "the key 'k\\udfff' holds a lone surrogate"),
        ({"type": "x", "a: b": {"c": {1}}}, "items[1].a: b.c", "a set is not JSON"),
        (nested(MAX_ITEM_DEPTH + 1), "items[1]" + ".v" * MAX_ITEM_DEPTH, "nested deeper"),
    ],
    ids=["surrogate-text", "surrogate-key", "key-with-colon", "too-deep"],
)
async def test_what_no_event_can_carry_is_refused_naming_it(
    sessions: Settings, item: Any, field: str, why: str
) -> None:
    session = RunwireSession(user_id="alice", settings=sessions)
    first = {"role": "user", "content": "kept"}
    with pytest.raises(ItemNotJSONError) as refused:
        await session.add_items([first, item])
    assert refused.value.field == field
    assert why in str(refused.value)
    assert await (await fresh(session, sessions)).get_items() == [], "nothing of the batch"


async def test_the_deepest_item_and_odd_call_ids_are_kept(sessions: Settings) -> None:
    deepest = nested(MAX_ITEM_DEPTH)
    odd = [
        {"role": "user", "content": "q"},
        {"type": "function_call", "call_id": "c" * 300, "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c" * 300, "output": "long id"},
        {"type": "function_call", "call_id": "a\u0000b", "name": "f", "arguments": "{}"},
        {"type": "beyond_floats", "n": Decimal("1e400")},  # a JSON number, not infinity
        deepest,
    ]
    session = RunwireSession(user_id="alice", settings=sessions)
    await session.add_items(copy.deepcopy(odd))
    again = await fresh(session, sessions)
    assert await again.get_items() == odd
    # Kept as items only: no canonical tool call whose id no event could hold.
    assert [m.role for m in await again.messages()] == ["user"]
    assert await again.pop_item() == deepest


@pytest.mark.parametrize(
    ("session_id", "branch_name", "why"),
    [("s" * 200, "alt", "204 characters, over the limit of 200"), (None, "a\tb", "U+0009")],
    ids=["id-too-long", "control-character"],
)
async def test_a_branch_name_no_id_can_hold_is_not_called_taken(
    sessions: Settings, session_id: str | None, branch_name: str, why: str
) -> None:
    session = RunwireSession(session_id, user_id="alice", settings=sessions)
    await session.add_items(
        [{"role": "user", "content": "t1"}, {"role": "assistant", "content": "a"}]
    )
    await session.add_items([{"role": "user", "content": "t2"}])
    with pytest.raises(BranchError) as refused:
        await session.create_branch_from_turn(2, branch_name)
    assert refused.value.field == "branch_name"
    assert why in str(refused.value)
    assert "already exists" not in str(refused.value)
    assert [b["branch_id"] for b in await session.list_branches()] == ["main"]


async def test_a_branch_gives_every_kind_exactly_and_afresh_each_read(sessions: Settings) -> None:
    session = RunwireSession(user_id="alice", settings=sessions)
    await session.add_items(copy.deepcopy(KINDS))
    await session.add_items([{"role": "user", "content": "turn 2"}])
    await session.create_branch_from_turn(2, "alt")  # shares the first turn: KINDS
    again = await fresh(session, sessions)
    await again.switch_to_branch("alt")
    got = await again.get_items()
    assert [shape(i) for i in got] == [shape(i) for i in KINDS]
    # The SDK may change what it was given; the next read is unchanged, as SQLiteSession's.
    got[0]["content"] = "changed by the caller"
    got[1]["content"].append({"type": "input_text", "text": "more"})
    assert await again.get_items() == KINDS
