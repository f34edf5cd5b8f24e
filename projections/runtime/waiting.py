"""Read-your-writes: wait until a projection has applied a position of the log."""

from __future__ import annotations

import asyncio
import time

from runwire.errors import RunwireError
from runwire.log.records import LogPosition, TopicPartition
from runwire.projections.runtime.protocol import Projection


class NotCaughtUpError(RunwireError):
    """A projection did not reach a position in time (retry, or read stale data knowingly)."""

    retriable = True


async def wait_for(
    projection: Projection,
    position: LogPosition,
    timeout: float = 10.0,  # noqa: ASYNC109 - a deadline for the polling, not a cancel scope
    *,
    first_poll: float = 0.002,
    max_poll: float = 0.05,
) -> None:
    """Return once ``projection`` has applied the record at ``position``.

    Applied means the projection's stored position for that partition is past
    ``position.offset`` (so the record, whether applied, deduplicated or
    dead-lettered, is behind it). Polls the stored positions with a short
    growing interval; raises :class:`NotCaughtUpError` after ``timeout``.
    """
    if position.topic not in projection.topics:
        raise ValueError(
            f"projection {projection.name!r} reads {projection.topics}, not {position.topic!r}"
        )
    tp = TopicPartition(position.topic, position.partition)
    deadline = time.monotonic() + timeout
    delay = first_poll
    while True:
        stored = (await projection.load_positions([tp])).get(tp, 0)
        if stored > position.offset:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise NotCaughtUpError(
                f"projection {projection.name!r} is at {tp.topic}/{tp.partition}@{stored}, "
                f"not yet past offset {position.offset} after {timeout:.1f}s"
            )
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 1.5, max_poll)
