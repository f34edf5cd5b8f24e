"""``RunwireSession`` branches on the real stack: a fork's items begin with its
parent's (shared, read from the log), and ``AdvancedSQLiteSession``'s branch calls."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from agents import Agent, Runner
from agents.testing.model import ScriptedModel, assistant_message

from runwire.sessions.openai_agents import (
    BranchError,
    RunwireSession,
    SharedItemError,
    close_shared_backends,
)
from runwire.settings import Settings
from tests.integration.sessions.test_agents_items import ITEMS


def _answer(text: str, n: int) -> dict[str, Any]:
    return {
        "type": "message",
        "id": f"msg_{n}",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


# Three turns: ITEMS (one turn: its two user items are one user message), then two more.
TURN_2 = [{"role": "user", "content": "second"}, _answer("two", 2)]
TURN_3 = [{"role": "user", "content": "third"}, _answer("three", 3)]


async def _three_turns(settings: Settings) -> RunwireSession:
    session = RunwireSession(user_id="alice", settings=settings)
    for batch in (ITEMS, TURN_2, TURN_3):
        await session.add_items(batch)
    assert [t["turn"] for t in await session.get_conversation_turns()] == [1, 2, 3]
    return session


async def test_a_branch_begins_with_its_parents_items_exactly(sessions: Settings) -> None:
    session = await _three_turns(sessions)
    everything = [*ITEMS, *TURN_2, *TURN_3]
    assert await session.create_branch_from_turn(3, "retry") == "retry"
    assert session.current_branch_id == "retry"
    shared = [*ITEMS, *TURN_2]
    # The parent's items, JSON-equal (big integers and floats exact), no copy written.
    assert await session.get_items() == shared
    assert await session.get_items(limit=3) == shared[-3:]
    assert await session.get_items(limit=100) == shared
    retry = [{"role": "user", "content": "third, differently"}, _answer("three again", 4)]
    await session.add_items(retry)
    assert await session.get_items() == [*shared, *retry]
    assert await session.get_items(limit=1) == retry[-1:]
    assert await session.get_items(limit=3) == [shared[-1], *retry]
    turns = await session.get_conversation_turns()
    assert [(t["turn"], t["full_content"]) for t in turns][1:] == [
        (2, "second"),
        (3, "third, differently"),
    ]
    assert [t["can_branch"] for t in turns] == [False, True, True]

    # The main branch is untouched; taking items back there does not reach the
    # branch, which began before.
    await session.switch_to_branch("main")
    assert await session.get_items() == everything
    for expected in reversed(everything[-3:]):
        assert await session.pop_item() == expected
    assert await session.get_items() == everything[:-3]

    branches = {b["branch_id"]: b for b in await session.list_branches()}
    assert set(branches) == {"main", "retry"}
    assert branches["main"]["is_current"]
    assert not branches["retry"]["is_current"]
    assert branches["retry"]["parent_branch_id"] == "main"
    assert branches["retry"]["message_count"] == len(shared) + len(retry)
    assert branches["retry"]["user_turns"] == 3
    assert branches["main"]["message_count"] == len(everything) - 3
    assert branches["retry"]["session_id"] == f"{session.session_id}~retry"

    # Another process (nothing held): the branch reads the same from the log.
    await asyncio.to_thread(close_shared_backends)
    again = RunwireSession(session.session_id, user_id="alice", settings=sessions)
    await again.switch_to_branch("retry")
    assert await again.get_items() == [*shared, *retry]
    # A branch of a branch shares both prefixes.
    await again.create_branch_from_turn(3, "deeper")
    assert await again.get_items() == shared
    names = [b["branch_id"] for b in await again.list_branches()]
    assert names == ["main", "retry", "deeper"]
    await again.close()


async def test_the_runner_on_a_branch_sees_the_shared_history(sessions: Settings) -> None:
    session = await _three_turns(sessions)
    await session.create_branch_from_turn(2)
    model = ScriptedModel([[assistant_message("the branch's answer")]])
    result = await Runner.run(Agent(name="helper", model=model), "new question", session=session)
    assert result.final_output == "the branch's answer"
    seen = repr(model.calls[0].input)
    assert "What is the weather in Paris?" in seen, "the branch's model saw the shared turn"
    assert "second" not in seen, "nothing after the branch point"
    assert "three" not in seen
    items = await session.get_items()
    assert items[: len(ITEMS)] == ITEMS
    assert [i.get("content") for i in items[len(ITEMS) :] if i.get("role") == "user"] == [
        "new question"
    ]


async def test_pop_takes_back_only_the_branchs_own_items(sessions: Settings) -> None:
    session = await _three_turns(sessions)
    await session.create_branch_from_turn(3, "b")
    mine = {"role": "user", "content": "only here"}
    await session.add_items([mine])
    assert await session.pop_item() == mine
    with pytest.raises(SharedItemError) as refused:
        await session.pop_item()
    assert isinstance(refused.value, RuntimeError)
    assert "shares with session" in str(refused.value)
    assert await session.get_items() == [*ITEMS, *TURN_2], "nothing shared was taken back"
    await session.switch_to_branch("main")
    assert await session.get_items() == [*ITEMS, *TURN_2, *TURN_3]


async def test_bad_branch_calls_are_refused_and_write_nothing(sessions: Settings) -> None:
    session = await _three_turns(sessions)
    cases: list[tuple[Any, str]] = [
        (session.create_branch_from_turn(4), "turn_number"),
        (session.create_branch_from_turn(1), "turn_number"),
        (session.create_branch_from_turn(2, "  "), "branch_name"),
        (session.create_branch_from_turn(2, "main"), "branch_name"),
        (session.switch_to_branch("nope"), "branch_id"),
        (session.delete_branch("main"), "branch_id"),
        (session.create_branch_from_content("no such words"), "search_term"),
    ]
    for call, field in cases:
        with pytest.raises(BranchError) as refused:
            await call
        assert refused.value.field == field
        assert isinstance(refused.value, ValueError)
    assert [b["branch_id"] for b in await session.list_branches()] == ["main"]
    assert session.current_branch_id == "main"

    assert await session.create_branch_from_content("SECOND", "x") == "x"
    assert await session.get_items() == list(ITEMS)
    with pytest.raises(BranchError) as refused:
        await session.delete_branch("x")
    assert "current branch" in str(refused.value)
    await session.switch_to_branch("main")
    with pytest.raises(BranchError) as refused:
        await session.create_branch_from_turn(3, "x")
    assert refused.value.field == "branch_name"
    await session.delete_branch("x")
    assert [b["branch_id"] for b in await session.list_branches()] == ["main"]
    with pytest.raises(BranchError):
        await session.switch_to_branch("x")
