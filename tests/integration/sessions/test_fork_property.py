"""Property, on the real stack: for random sessions and fork points (the end of a turn,
or a random log offset of a random run), a fork's history is the parent's history
up to the fork point followed by the fork's own messages, forks of forks included,
and still is after rebuilding the session index and the transcript cache from the
log. A random offset inside an open tool call, or beyond the run's part of the
history, is refused with nothing written."""

from __future__ import annotations

import hypothesis
import pytest
from hypothesis import strategies as st

from runwire.errors import InputError
from runwire.projections.catalog import opener
from runwire.projections.runtime.protocol import Rebuildable
from runwire.projections.runtime.rebuild import rebuild
from runwire.projections.transcripts.history import cut_at_turn
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
Point = tuple[bool, int, int]
"""(at a run position?, which turn or run, which offset of it)"""
points = st.tuples(st.booleans(), picks, picks)
Shape = tuple[list[bool], Point, list[bool], bool, Point, list[bool]]
shapes = st.tuples(turns, points, turns, st.booleans(), points, turns)
"""(parent's turns, fork point, fork's own turns, fork the fork?, its point, its turns);
a turn is True when it calls a tool."""

Segment = tuple[str, list[Message]]
"""A run of a session's history and the messages it gives there (cut or whole)."""


async def _write(session: AsyncSession, tools: list[bool], start: int) -> list[list[Message]]:
    out = []
    for i, tool in enumerate(tools):
        messages = _turn(start + i, tool)
        await session.add_messages(messages)
        out.append(messages)
    return out


def _flat(segments: list[Segment]) -> list[Message]:
    return [m for _, messages in segments for m in messages]


class Refused:
    """How many random positions were refused, by why (the property must see both)."""

    def __init__(self) -> None:
        self.open_call = 0
        self.beyond = 0
        self.taken = 0


async def _fork(
    backend: LogBackend,
    session: AsyncSession,
    segments: list[Segment],
    point: Point,
    refused: Refused,
) -> tuple[AsyncSession, list[Segment]]:
    """Fork ``session`` (whose history is ``segments``) at ``point``; returns the fork
    and the segments its prefix must hold."""
    at_position, which, offset_pick = point
    if at_position:
        k = which % len(segments)
        run_id = segments[k][0]
        found = await session.fork_points(run_id)
        first, last = found[0].offset, found[-1].offset
        # One past the run's last record in this history: beyond it.
        offset = first + offset_pick % (last - first + 2)
        before = len(await session.branches())
        if offset > last:
            with pytest.raises(InputError, match="beyond") as e:
                await session.fork(at_run=run_id, at_offset=offset)
            assert e.value.field == "at_offset"
            refused.beyond += 1
        elif not [p for p in found if p.offset <= offset][-1].whole:
            with pytest.raises(InputError, match="open tool call") as e:
                await session.fork(at_run=run_id, at_offset=offset)
            assert e.value.field == "at_offset"
            refused.open_call += 1
        else:
            fork = await session.fork(at_run=run_id, at_offset=offset)
            # Time travel, read from the log through another path, is the oracle.
            cut = await backend.cache.history().run_at(run_id, offset=offset)
            refused.taken += 1
            return fork, [*segments[:k], (run_id, cut.messages)]
        assert len(await session.branches()) == before, "a refused fork writes nothing"
    flat = _flat(segments)
    count = sum(1 for m in flat if m.role == "user" and isinstance(m.parts[0], TextPart))
    turn = 1 + which % count
    kept = cut_at_turn(flat, turn, "expected")
    fork = await session.fork(turn=turn)
    out: list[Segment] = []
    for run_id, messages in segments:  # a turn fork keeps whole runs (one per turn)
        if len(_flat(out)) >= len(kept):
            break
        out.append((run_id, messages))
    assert _flat(out) == kept
    return fork, out


async def _own(
    backend: LogBackend, session: AsyncSession, tools: list[bool], start: int
) -> list[Segment]:
    written = await _write(session, tools, start)
    runs = [r.run_id for r in await backend.history(session.session_id)]
    assert len(runs) == len(written), "one run per turn"
    return list(zip(runs, written, strict=True))


async def test_a_fork_is_the_parents_prefix_then_its_own(
    settings: Settings, log_backend: LogBackend
) -> None:
    # (session, user, the messages its history must hold)
    expected: list[tuple[str, list[Message]]] = []
    refused = Refused()

    async def example(shape: Shape) -> None:
        parent_turns, point, own_turns, fork_again, again_point, deeper_turns = shape
        parent = await AsyncSession(user_id="alice", backend=log_backend).open()
        segments = await _own(log_backend, parent, parent_turns, 0)
        child, child_segments = await _fork(log_backend, parent, segments, point, refused)
        assert await child.get_messages() == _flat(child_segments)
        child_segments += await _own(log_backend, child, own_turns, 100)
        assert await child.get_messages() == _flat(child_segments)
        assert await parent.get_messages() == _flat(segments)
        expected.append((parent.session_id, _flat(segments)))
        expected.append((child.session_id, _flat(child_segments)))
        if fork_again:
            grandchild, deeper = await _fork(
                log_backend, child, child_segments, again_point, refused
            )
            deeper += await _own(log_backend, grandchild, deeper_turns, 200)
            assert await grandchild.get_messages() == _flat(deeper)
            expected.append((grandchild.session_id, _flat(deeper)))
            await grandchild.close()
        await child.close()
        await parent.close()

    # Draw the shapes first, on the loop's own thread (so nothing else touches the
    # random module meanwhile), then run each on the stack in turn.
    drawn: list[Shape] = []

    @hypothesis.given(shape=shapes)
    # Inside the first turn's tool call (refused), then a fork of the turn fork.
    @hypothesis.example(([True, False], (True, 0, 4), [False], True, (True, 999, 999), [True]))
    # A fork inside a run, then its fork: beyond the cut in that run (refused) ...
    @hypothesis.example(([False, True], (True, 1, 3), [False], True, (True, 1, 4), [False]))
    # ... and inside its own run, after the cut one (two cuts in the prefix).
    @hypothesis.example(([False, True], (True, 1, 3), [False], True, (True, 2, 1000), [False]))
    @on_the_stack(EXAMPLES)
    def draw(shape: Shape) -> None:
        drawn.append(shape)

    draw()
    for shape in drawn:
        try:
            await example(shape)
        except Exception as e:
            raise AssertionError(f"the example {shape!r} failed: {e}") from e

    assert len(expected) >= 2 * EXAMPLES
    assert refused.taken > 0, "no random position was forked at"
    assert refused.open_call > 0, "no random position fell inside a tool call"
    assert refused.beyond > 0, "no random position fell beyond a run"

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
