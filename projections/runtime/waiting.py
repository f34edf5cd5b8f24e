"""Read-your-writes: wait until a projection has applied a position of the log.

- :func:`wait_for` returns once the projection's stored position for the
  partition is past the offset (applied, deduplicated or dead-lettered), and
  raises :class:`NotCaughtUpError` after ``timeout``.
- Waits on one projection object share one poll loop per event loop
  (:class:`PositionWaits`): each poll loads the positions of every awaited
  partition at once and releases every wait it satisfies. Why: a writer that
  returns at the broker's acknowledgement confirms each write in the
  background; one polling loop per write made a busy writer query its stores
  several times per write.
- Each wait keeps its own schedule (``first_poll``, growing 1.5 times up to
  ``max_poll``); a poll made for one wait counts for every wait due soon, so
  overlapping waits share polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from dataclasses import dataclass, field

from runwire.errors import RunwireError
from runwire.log.records import LogPosition, TopicPartition
from runwire.projections.runtime.protocol import Projection

__all__ = ["NotCaughtUpError", "PositionWaits", "wait_for"]


class NotCaughtUpError(RunwireError):
    """A projection did not reach a position in time (retry, or read stale data knowingly)."""

    retriable = True


@dataclass(eq=False, slots=True)
class _Wait:
    tp: TopicPartition
    offset: int
    deadline: float
    timeout: float
    next_at: float
    delay: float
    max_poll: float
    done: asyncio.Future[None]
    stored: int = field(default=0)


class PositionWaits:
    """The waits of one event loop on one projection's positions (see the module contract)."""

    def __init__(self, projection: Projection) -> None:
        self._projection = projection
        self._waits: list[_Wait] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def wait(
        self,
        position: LogPosition,
        timeout: float = 10.0,  # noqa: ASYNC109 - a deadline for the polling, not a cancel scope
        *,
        first_poll: float = 0.002,
        max_poll: float = 0.05,
    ) -> None:
        """Return once the projection has applied ``position`` (see :func:`wait_for`)."""
        if position.topic not in self._projection.topics:
            raise ValueError(
                f"projection {self._projection.name!r} reads {self._projection.topics}, "
                f"not {position.topic!r}"
            )
        now = time.monotonic()
        wait = _Wait(
            TopicPartition(position.topic, position.partition),
            position.offset,
            deadline=now + timeout,
            timeout=timeout,
            next_at=now,  # the first check is at once, as a lone wait's is
            delay=first_poll,
            max_poll=max_poll,
            done=asyncio.get_running_loop().create_future(),
        )
        self._waits.append(wait)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll(), name="position-waits")
        else:
            self._wake.set()
        try:
            await asyncio.shield(wait.done)
        finally:
            if not wait.done.done():
                wait.done.cancel()
            if wait in self._waits:
                self._waits.remove(wait)

    async def _poll(self) -> None:
        while True:
            self._waits = [w for w in self._waits if not w.done.done()]
            if not self._waits:
                return
            now = time.monotonic()
            due = min(min(w.next_at, w.deadline) for w in self._waits)
            if due > now:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), due - now)
                continue
            waits = list(self._waits)
            try:
                stored = await self._projection.load_positions({w.tp for w in waits})
            except asyncio.CancelledError:
                for w in waits:
                    w.done.cancel()
                raise
            except Exception as e:  # every wait learns why (a store that is down)
                for w in waits:
                    if not w.done.done():
                        w.done.set_exception(e)
                return
            now = time.monotonic()
            for w in waits:
                if w.done.done():
                    continue
                w.stored = stored.get(w.tp, 0)
                if w.stored > w.offset:
                    w.done.set_result(None)
                elif now >= w.deadline:
                    w.done.set_exception(
                        NotCaughtUpError(
                            f"projection {self._projection.name!r} is at "
                            f"{w.tp.topic}/{w.tp.partition}@{w.stored}, not yet past offset "
                            f"{w.offset} after {w.timeout:.1f}s"
                        )
                    )
                elif w.next_at <= now + w.delay / 2:
                    # Due now or soon: this poll counts as its own.
                    w.next_at = now + w.delay
                    w.delay = min(w.delay * 1.5, w.max_poll)


_shared: weakref.WeakKeyDictionary[
    Projection, weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PositionWaits]
] = weakref.WeakKeyDictionary()


def _waits_of(projection: Projection) -> PositionWaits:
    loop = asyncio.get_running_loop()
    try:
        by_loop = _shared.setdefault(projection, weakref.WeakKeyDictionary())
    except TypeError:  # not weakly referable: a loop of its own
        return PositionWaits(projection)
    waits = by_loop.get(loop)
    if waits is None:
        waits = by_loop[loop] = PositionWaits(projection)
    return waits


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
    growing interval, shared with the other waits on ``projection``; raises
    :class:`NotCaughtUpError` after ``timeout``.
    """
    await _waits_of(projection).wait(position, timeout, first_poll=first_poll, max_poll=max_poll)
