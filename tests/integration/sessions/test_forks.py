"""Forks on the real stack: a session forked at a turn shares the parent's history
up to it (read from the log, not copied), then goes on its own."""

from __future__ import annotations

import json

import pytest

from runwire.errors import InputError, NotFoundError
from runwire.sessions import AsyncSession
from runwire.sessions.log_backend import LogBackend
from runwire.settings import Settings
from runwire.transcript.messages import Message, ToolUsePart
from tests.integration.sessions.test_sessions_cli import runwire
from tests.integration.sessions.test_sessions_stack import stack_env


def texts(messages: list[Message]) -> list[str]:
    return [m.text() or m.parts[0].kind for m in messages]


async def _parent(backend: LogBackend) -> AsyncSession:
    s = await AsyncSession(user_id="alice", backend=backend).open()
    await s.add_messages([("user", "q1"), ("assistant", "a1")])
    await s.add_message("user", "q2")
    await s.add_message("assistant", ["calling", ToolUsePart(id="c1", name="calc", input={})])
    await s.add_message("tool", {"tool_use_id": "c1", "content": 42})
    await s.add_message("assistant", "a2")
    await s.add_messages([("user", "q3"), ("assistant", "a3")])
    await s.add_messages([("user", "q4"), ("assistant", "a4")])
    return s


async def test_a_fork_shares_the_prefix_and_goes_on_alone(log_backend: LogBackend) -> None:
    parent = await _parent(log_backend)
    at_two = await parent.get_messages(as_of=2)
    parent_now = await parent.get_messages()
    child = await parent.fork(turn=2)
    assert child.created
    assert child.parent_session_id == parent.session_id
    assert await child.get_messages() == at_two
    await child.add_messages([("user", "q3 in the fork"), ("assistant", "a3 in the fork")])
    assert texts(await child.get_messages()) == [
        *texts(at_two),
        "q3 in the fork",
        "a3 in the fork",
    ]
    assert await parent.get_messages() == parent_now  # the parent is untouched
    turns = await child.turns()
    assert [t.number for t in turns] == [1, 2, 3]
    assert [t.run_id for t in turns[:2]] == [t.run_id for t in (await parent.turns())[:2]]
    assert texts(await child.get_messages(as_of=2)) == texts(at_two)
    assert texts(await child.get_messages(limit=1)) == ["q3 in the fork", "a3 in the fork"]
    assert [b.session_id for b in await parent.branches()] == [child.session_id]
    info = await child.info()
    assert info.fork is not None
    assert info.fork["turn"] == 2
    assert len(info.fork["run_ids"]) == 2  # names the runs: no message copied

    # Forks of forks: at a turn of its own, and at one inside its prefix.
    grandchild = await child.fork(turn=3)
    assert await grandchild.get_messages() == await child.get_messages()
    early = await child.fork(turn=1)
    assert texts(await early.get_messages()) == ["q1", "a1"]
    assert {b.session_id for b in await child.branches()} == {
        grandchild.session_id,
        early.session_id,
    }
    await grandchild.add_message("user", "deeper")
    assert texts(await grandchild.get_messages())[-1] == "deeper"
    assert texts(await child.get_messages())[-1] == "a3 in the fork"

    # A fork that clears itself hides the prefix too.
    await early.clear()
    assert await early.get_messages() == []
    for s in (parent, child, grandchild, early):
        await s.close()


async def test_forking_refuses_bad_input_and_writes_nothing(log_backend: LogBackend) -> None:
    parent = await _parent(log_backend)
    with pytest.raises(InputError, match="has 4 turns; no turn 5") as missing:
        await parent.fork(turn=5)
    assert missing.value.field == "turn"
    with pytest.raises(InputError, match="at least 1"):
        await parent.fork(turn=0)
    other = await parent.fork(turn=1)
    with pytest.raises(InputError, match="exists"):
        await parent.fork(turn=1, session_id=other.session_id)
    assert [b.session_id for b in await parent.branches()] == [other.session_id]
    with pytest.raises(NotFoundError):
        await AsyncSession(parent.session_id, user_id="mallory", backend=log_backend).open()
    await other.close()
    await parent.close()


async def test_deleting_the_parent_takes_the_shared_prefix_from_its_forks(
    log_backend: LogBackend,
) -> None:
    parent = await _parent(log_backend)
    child = await parent.fork(turn=3)
    await child.add_messages([("user", "mine"), ("assistant", "yes")])
    grandchild = await child.fork(turn=4)
    await parent.delete()
    # Erasure reaches what was shared: each fork keeps only what it wrote.
    assert texts(await child.get_messages()) == ["mine", "yes"]
    assert texts(await grandchild.get_messages()) == ["mine", "yes"]
    assert [t.number for t in await child.turns()] == [1]
    # Deleting a fork leaves its parent alone.
    other = await _parent(log_backend)
    doomed = await other.fork(turn=1)
    await doomed.add_message("user", "gone soon")
    before = await other.get_messages()
    await doomed.delete()
    assert await other.get_messages() == before
    await other.close()
    await child.close()
    await grandchild.close()


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI, run in this process, talks to this test's deployment."""
    for name, value in stack_env(settings).items():
        if name.startswith("RUNWIRE_"):
            monkeypatch.setenv(name, value)


async def test_fork_from_the_cli_prints_the_new_id(log_backend: LogBackend, cli_env: None) -> None:
    parent = await _parent(log_backend)
    made = await runwire("sessions", "fork", parent.session_id, "--turn", "3", "--json")
    assert made.exit_code == 0, made.output
    doc = json.loads(made.stdout)
    assert doc["parent_session_id"] == parent.session_id
    async with AsyncSession(doc["session_id"], user_id="alice", backend=log_backend) as child:
        assert await child.get_messages() == await parent.get_messages(as_of=3)
    shown = await runwire("sessions", "show", doc["session_id"], "--turn", "3", "--json")
    assert shown.exit_code == 0, shown.output
    assert [m["parts"][0].get("text") for m in json.loads(shown.stdout)["messages"]][-2:] == [
        "q3",
        "a3",
    ]
    bad = await runwire("sessions", "fork", parent.session_id, "--turn", "7")
    assert bad.exit_code != 0
    assert "no turn 7" in bad.output
    plain = await runwire("sessions", "fork", parent.session_id, "--turn", "1")
    assert plain.exit_code == 0, plain.output
    assert plain.stdout.strip() != doc["session_id"]
    assert len(await parent.branches()) == 2
    await parent.close()


async def test_fork_at_a_run_position_from_the_cli(log_backend: LogBackend, cli_env: None) -> None:
    parent = await _parent(log_backend)
    tool_run = (await parent.turns())[1].run_id  # q2, the tool call, its result, a2
    points = await parent.fork_points(tool_run)
    result = next(p for p in points if p.event_type == "tool_result")
    made = await runwire(
        "sessions",
        "fork",
        parent.session_id,
        "--run",
        tool_run,
        "--at",
        str(result.offset),
        "--json",
    )
    assert made.exit_code == 0, made.output
    doc = json.loads(made.stdout)
    assert doc["parent_session_id"] == parent.session_id
    assert (doc["at_run"], doc["at_offset"], doc["turn"]) == (tool_run, result.offset, 2)
    async with AsyncSession(doc["session_id"], user_id="alice", backend=log_backend) as child:
        assert texts(await child.get_messages()) == ["q1", "a1", "q2", "calling", "tool_result"]
        assert texts(await child.get_messages()) == texts(
            [
                *(await parent.get_messages(as_of=1)),
                *(
                    await log_backend.cache.history().run_at(tool_run, offset=result.offset)
                ).messages,
            ]
        )

    inside = next(p for p in points if not p.whole)
    cases = [
        (["--run", tool_run, "--at", str(inside.offset)], "--at: offset", "open tool call"),
        (["--run", tool_run, "--at", str(points[-1].offset + 1)], "--at: run", "beyond"),
        (["--run", "no-such-run", "--at", "0"], "--run: run no-such-run", "not in the history"),
        (["--run", tool_run], "--at", "a position needs a run and an offset"),
        (["--turn", "1", "--run", tool_run, "--at", "0"], "--turn", "not both"),
    ]
    for args, named, why in cases:
        bad = await runwire("sessions", "fork", parent.session_id, *args)
        assert bad.exit_code != 0, (args, bad.output)
        assert named in bad.output, (args, bad.output)
        assert why in bad.output, (args, bad.output)
    assert [b.session_id for b in await parent.branches()] == [doc["session_id"]]
    await parent.close()
