"""Turns: every round trip has a ``turn_id``; a session's turn list, its usage,
messages and runs by turn, read from the log."""

from __future__ import annotations

import pytest

from runwire.client import Client
from runwire.contract.events import AssistantText, Event, Usage
from runwire.errors import InputError
from runwire.log import Publisher
from runwire.sessions import AsyncSession
from runwire.sessions.log_backend import LogBackend
from runwire.settings import Settings
from tests.helpers import assert_eventually


async def test_each_session_turn_is_a_run_with_its_turn_id(log_backend: LogBackend) -> None:
    async with AsyncSession(user_id="alice", backend=log_backend) as s:
        await s.add_messages([("user", "one"), ("assistant", "1")])
        await s.add_message("user", "two")
        await s.add_message("assistant", "2")
        await s.add_messages([("user", "three"), ("assistant", "3")])
        turns = await s.turns()
        assert [t.number for t in turns] == [1, 2, 3]
        assert [t.turn_id for t in turns] == [t.run_id for t in turns]
        assert len({t.run_id for t in turns}) == 3
        assert [[m.text() for m in t.messages] for t in turns] == [
            ["one", "1"],
            ["two", "2"],
            ["three", "3"],
        ]
        second = turns[1].turn_id
        assert second is not None
        assert [m.text() for m in await s.get_messages(turns=[second])] == ["two", "2"]
        assert [m.text() for m in await s.get_messages(turns=[3, 1])] == ["one", "1", "three", "3"]
        assert await s.runs_of_turn(second) == [turns[1].run_id]
        assert await s.runs_of_turn("no-such-turn") == []
        with pytest.raises(InputError, match="has no turn nope"):
            await s.get_messages(turns=["nope"])
        with pytest.raises(InputError, match="without limit or as_of"):
            await s.get_messages(limit=1, turns=[1])
        # Every event the API wrote into a turn's run carries the turn's id.
        records = await log_backend.cache.history().records_now([turns[1].run_id])
        assert {r.event.turn_id for r in records[turns[1].run_id]} == {second}


async def test_client_turns_and_their_usage(settings: Settings, log_backend: LogBackend) -> None:
    async with Client(settings) as rw, Publisher(settings) as publisher:
        await rw.declare_session("s-turns", user_id="alice")
        handle = await rw.run("agent", "first", session_id="s-turns", user_id="alice")
        assert handle.turn_id is not None

        def answer(turn_id: str | None, text: str, tokens: int) -> list[Event]:
            usage = Usage(model="m", provider="local", input_tokens=tokens, output_tokens=1)
            return [
                Event.create(
                    payload,
                    run_id=handle.run_id,
                    session_id="s-turns",
                    user_id="alice",
                    turn_id=turn_id,
                )
                for payload in (AssistantText(text=text), usage)
            ]

        await publisher.publish_many(answer(handle.turn_id, "reply one", 10))
        await rw.say(handle.run_id, "second", turn_id="t-2")
        await publisher.publish_many(answer("t-2", "reply two", 20))
        # A usage event naming no turn counts for the run's latest one.
        last = await publisher.publish_many(answer(None, " more", 5))
        await log_backend.cache.wait_for(last[-1], timeout=30)

    async def listed() -> bool:
        async with AsyncSession("s-turns", user_id="alice", backend=log_backend) as s:
            turns = await s.turns()
        assert [t.turn_id for t in turns] == [handle.turn_id, "t-2"]
        assert [t.run_id for t in turns] == [handle.run_id] * 2
        assert [(t.usage.input_tokens, t.usage.output_tokens) for t in turns] == [(10, 1), (25, 2)]
        assert [[m.text() for m in t.messages] for t in turns] == [
            ["first", "reply one"],
            ["second", "reply two more"],
        ]
        return True

    await assert_eventually(listed, timeout=30)
