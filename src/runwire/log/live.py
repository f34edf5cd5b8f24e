"""The live topic: what readers see of a run while it is being written.

Contract:
- Live events (``live_chunk``, ``live_tool_started``, ``live_tool_finished``)
  go to the live topic keyed by run id, written by the one writer like any
  event; they are never part of a run's canonical events, so the run-events
  topic, every projection and every replay are unchanged by them.
- Live events are best effort: :class:`LiveEmitter` sends them without
  holding up the work they describe, in the order given per emitter, and a
  failed send is dropped with a warning, never raised. A reader must never
  depend on them: the canonical events say what happened.
- :func:`live_watcher` is a :class:`~runwire.log.watcher.RunWatcher` on the
  live topic: the same subscriptions, and ``offset_at`` to join a run at the
  time its current answer began.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from runwire.log.watcher import RunWatcher

if TYPE_CHECKING:
    from runwire.contract.codec import Codec
    from runwire.contract.events import Event
    from runwire.log.writer import EventWriter
    from runwire.settings import Settings

__all__ = ["LiveEmitter", "live_watcher"]

log = logging.getLogger(__name__)


LIVE_FETCH_MAX_WAIT_MS = 50
"""How long a live watcher's fetch waits for data. A partition subscribed to
while a fetch is in flight is only asked for by the next one, so this bounds
how late a reader that joins sees its first chunk (the default 500 ms would
show as half a second before the first token); the price is a fetch request
per broker every 50 ms while nothing is written."""


def live_watcher(settings: Settings, codec: Codec, *, purpose: str = "live") -> RunWatcher:
    """A watcher of the live topic (start it like any :class:`RunWatcher`)."""
    return RunWatcher(
        settings,
        codec,
        purpose=purpose,
        topic=settings.live,
        fetch_max_wait_ms=LIVE_FETCH_MAX_WAIT_MS,
    )


class LiveEmitter:
    """Sends live events in the background, one at a time, in the order emitted.

    ``emit`` never waits and never raises. While a send is in flight, later
    events queue; when the queue runs dry, ``refill`` (if given) is asked for
    one more event, so a producer can batch whatever piled up during a send
    into the next one. :meth:`flush` waits until nothing is left (for tests
    and an orderly stop). ``sent`` and ``dropped`` count outcomes.
    """

    def __init__(
        self, writer: EventWriter, *, refill: Callable[[], Event | None] | None = None
    ) -> None:
        self._writer = writer
        self._refill = refill
        self._queue: deque[Event] = deque()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.dropped = 0

    def emit(self, event: Event) -> None:
        self._queue.append(event)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="runwire live emitter")

    @property
    def busy(self) -> bool:
        """True while a send is in flight (or queued)."""
        return self._task is not None and not self._task.done()

    async def flush(self) -> None:
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _drain(self) -> None:
        while True:
            if not self._queue and self._refill is not None:
                more = self._refill()
                if more is not None:
                    self._queue.append(more)
            if not self._queue:
                return
            event = self._queue.popleft()
            try:
                await self._writer.publish(event)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # best effort: the canonical events carry the truth
                self.dropped += 1
                log.warning("a live %s event was dropped: %s", event.type.value, e)
            else:
                self.sent += 1
