"""Property, on the real stack: for random sessions and fork points, a fork's history
is the parent's history up to the fork point followed by the fork's own messages,
forks of forks included, and still is after rebuilding the session index and the
transcript cache from the log."""

from __future__ import annotations

import asyncio

import hypothesis
from hypothesis import strategies as st

from runwire.projections.catalog import opener
from runwire.projections.runtime.protocol import Rebuildable
from runwire.projections.runtime.rebuild import rebuild
from runwire.sessions import AsyncSession
from runwire.sessions.log_backend import LogBackend
from runwire.settings import Settings
from runwire.transcript.messages import Message, TextPart, ToolResultPart, ToolUsePart
from tests.helpers import on_the_stack

EXAMPLES = 6


def _turn(n: int, tool: bool) -> list[Message]:
    """The messages of one turn: a question and an answer, maybe with a tool call."""
    user = Message(role="user", parts=(TextPart(text=f"q{n}"),))
    if not tool:
        return [user, Message(role="assistant", parts=(TextPart(text=f"a{n}"),))]
    use = ToolUsePart(id=f"c{n}", name="calc", input={"n": n})
    return [
        user,
        Message(role="assistant", parts=(TextPart(text="calling"), use)),
        Message(role="user", parts=(ToolResultPart(tool_use_id=f"c{n}", content={"r": n}),)),
        Message(role="assistant", parts=(TextPart(text=f"a{n}"),)),
    ]


turns = st.lists(st.booleans(), min_size=1, max_size=4)
picks = st.integers(0, 1000)
Shape = tuple[list[bool], int, list[bool], bool, int, list[bool]]
shapes = st.tuples(turns, picks, turns, st.booleans(), picks, turns)
"""(parent's turns, fork point, fork's own turns, fork the fork?, its point, its turns);
a turn is True when it calls a tool."""


async def _write(session: AsyncSession, tools: list[bool], start: int) -> list[list[Message]]:
    out = []
    for i, tool in enumerate(tools):
        messages = _turn(start + i, tool)
        await session.add_messages(messages)
        out.append(messages)
    return out


def _flat(turn_list: list[list[Message]]) -> list[Message]:
    return [m for t in turn_list for m in t]


async def test_a_fork_is_the_parents_prefix_then_its_own(
    settings: Settings, log_backend: LogBackend
) -> None:
    loop = asyncio.get_running_loop()
    # (session, user, the messages its history must hold)
    expected: list[tuple[str, list[Message]]] = []

    async def example(shape: Shape) -> None:
        parent_turns, at_pick, own_turns, fork_again, again_pick, deeper_turns = shape
        parent = await AsyncSession(user_id="alice", backend=log_backend).open()
        written = await _write(parent, parent_turns, 0)
        at = 1 + at_pick % len(written)
        child = await parent.fork(turn=at)
        own = await _write(child, own_turns, 100)
        child_turns = written[:at] + own
        assert await child.get_messages() == _flat(child_turns)
        assert await parent.get_messages() == _flat(written)
        expected.append((parent.session_id, _flat(written)))
        expected.append((child.session_id, _flat(child_turns)))
        if fork_again:
            again = 1 + again_pick % len(child_turns)
            grandchild = await child.fork(turn=again)
            deeper = await _write(grandchild, deeper_turns, 200)
            assert await grandchild.get_messages() == _flat(child_turns[:again] + deeper)
            expected.append((grandchild.session_id, _flat(child_turns[:again] + deeper)))
            await grandchild.close()
        await child.close()
        await parent.close()

    @hypothesis.given(shape=shapes)
    @on_the_stack(EXAMPLES)
    def prop(shape: Shape) -> None:
        asyncio.run_coroutine_threadsafe(example(shape), loop).result(300)

    await asyncio.to_thread(prop)
    assert len(expected) >= 2 * EXAMPLES

    # Rebuild the read models the histories come through; they agree.
    for name in ("sessions", "transcripts"):
        async with opener(name)(settings) as projection:
            assert isinstance(projection, Rebuildable)
            report = await rebuild(projection, settings)
            assert report.generation >= 1  # a new copy, live now
    async with LogBackend(settings) as fresh:
        for session_id, messages in expected:
            async with AsyncSession(session_id, user_id="alice", backend=fresh) as s:
                assert await s.get_messages() == messages, session_id
