"""A conversation that moves between processes: ``RunwireSession(visible_to="everyone")``.

By default a write is visible to the writer's process at once and to others once
the read models applied it. A deployment that serves one conversation from
several processes asks the shared backend for ``visible_to="everyone"``: every
``add_items`` then returns only once any process's next read (or pop) sees it.
"""

from __future__ import annotations

from typing import Any

import pytest

from runwire.sessions.log_backend import LogBackend
from runwire.sessions.openai_agents import RunwireSession
from runwire.settings import Settings


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


async def test_another_process_reads_and_pops_what_was_just_added(sessions: Settings) -> None:
    writer = RunwireSession(user_id="alice", settings=sessions, visible_to="everyone")
    await writer.add_items([user("u0")])
    async with LogBackend(sessions) as elsewhere:  # another process, default settings
        other = RunwireSession(writer.session_id, user_id="alice", backend=elsewhere)
        assert await other.get_items() == [user("u0")]
        for i in range(1, 11):
            await writer.add_items([user(f"u{i}")])
            assert await other.get_items() == [user("u0"), user(f"u{i}")]
            assert await other.pop_item() == user(f"u{i}")  # the newest: the one just added
        turn = [
            user("q"),
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
        ]
        await writer.add_items(turn[:1])
        await writer.add_items(turn[1:])  # joins the turn's run
        assert await other.get_items() == [user("u0"), *turn]
    assert await writer.get_items() == [user("u0"), *turn]
    await writer.close()


async def test_visible_to_is_for_the_shared_backend_only(sessions: Settings) -> None:
    async with LogBackend(sessions) as backend:
        with pytest.raises(ValueError, match="visible_to"):
            RunwireSession(user_id="alice", backend=backend, visible_to="everyone")
    with pytest.raises(ValueError, match="visible_to"):
        RunwireSession(user_id="alice", settings=sessions, visible_to="all")  # type: ignore[arg-type]
