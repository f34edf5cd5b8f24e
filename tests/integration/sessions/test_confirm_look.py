"""The one look a served write's confirmation takes at the transcript cache
(:meth:`SessionView.applied`): not yet, taken, or not taken."""

from __future__ import annotations

import uuid

from runwire.contract.events import Event, RunStarted, UserMessage
from runwire.log import Position, publish_retrying
from runwire.sessions.log_backend import LogBackend


async def test_the_look_says_not_yet_taken_or_not_taken(log_backend: LogBackend) -> None:
    view = log_backend.view
    ends: dict[int, list[tuple[str, Position]]] = {}
    # Runs until two share a partition (12 partitions: at most 13 runs).
    while not any(len(runs) > 1 for runs in ends.values()):
        run_id = f"r-look-{uuid.uuid4().hex}"
        started = Event.create(RunStarted(), run_id=run_id, session_id="s-look")
        said = Event.create(UserMessage(parts=["hi"]), run_id=run_id, session_id="s-look")
        last = (await publish_retrying(log_backend.publisher, [started, said]))[-1]
        ends.setdefault(last.partition, []).append((run_id, last))
    (first, first_end), (second, second_end) = next(r for r in ends.values() if len(r) > 1)[:2]
    await view.cache.wait_for(second_end)

    assert await view.applied(first, first_end) is True
    assert await view.applied(second, second_end) is True
    # The projector passed the offset, but the run's events end before it: a
    # write at that offset was not taken.
    assert await view.applied(first, second_end) is False
    # A position the projector has not passed yet.
    ahead = Position(second_end.topic, second_end.partition, second_end.offset + 1_000)
    assert await view.applied(second, ahead) is None

    # The generation looked in last is no longer the live one (a rebuild went
    # live since, and the old one was dropped): the look reads the live one again.
    view._looked_in = 999
    assert await view.applied(first, first_end) is True
    assert view._looked_in == await view.live()
