"""Server-Sent Events: a run's events as a ``text/event-stream``.

Contract of :func:`run_event_stream`:
- Starts with ``retry: 2000``; then one message per event of the run, in log
  order: ``id:`` the event_id, ``event:`` the event type, ``data:`` the event
  as JSON (the envelope with its typed payload; numbers exact,
  :func:`.exact_json.dumps`).
- Live events (``live_chunk``, ``live_tool_started``, ``live_tool_finished``)
  come as messages without ``id:``: they are never part of the run's log, so
  ``Last-Event-ID`` always names a canonical event, and a reconnecting client
  gets the live events again only for answers still being written.
- After the run's terminal event, one ``event: end`` message whose data is
  ``{"run_id", "status"}``, and the stream closes.
- Given ``last_event_id`` (the ``Last-Event-ID`` header of a reconnecting
  client), the events up to and including that one are not sent again. When
  the run ends and no event had that id, the stream ends with ``event:
  error`` naming it, never an ``end`` that would claim the client saw the run.
- While nothing happens, a ``: keepalive`` comment every ``keepalive``
  seconds, so proxies keep the connection and a gone client is noticed.
- A failure while reading the log ends the stream with ``event: error``
  (``{"error": "unavailable" | "internal", "message", "retriable"}``: the
  failure's kind, never its text, which may name hosts and ports; that goes
  to the log); the client may reconnect with its last id.
- When ``closing`` is set (the server is shutting down), the stream ends at
  once with a ``: server closing`` comment and no ``end`` message, so the
  client reconnects (to another instance) with its last id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Final

from runwire.contract.events import TERMINAL_EVENTS, Event, Stream
from runwire.errors import RunwireError
from runwire.services.api import exact_json

__all__ = ["comment", "message", "run_event_stream"]

log = logging.getLogger(__name__)

_END: Final = object()
_CLOSING: Final = object()


def message(data: str, *, event: str | None = None, event_id: str | None = None) -> bytes:
    """One SSE message (``data`` may hold newlines: each becomes its own ``data:`` line)."""
    lines: list[str] = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines += [f"data: {line}" for line in data.split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


def comment(text: str) -> bytes:
    return f": {text}\n\n".encode()


async def _pump(events: AsyncIterator[Event], queue: asyncio.Queue[object]) -> None:
    try:
        async for event in events:
            await queue.put(event)
        await queue.put(_END)
    except Exception as e:
        log.warning("reading run events for a stream failed: %r", e)
        await queue.put(e)
    finally:
        # Cancelled while parked on a full queue, the generator is suspended at
        # a yield: close it now so its log subscription ends with the stream.
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


async def _close_on(closing: asyncio.Event, queue: asyncio.Queue[object]) -> None:
    await closing.wait()
    await queue.put(_CLOSING)


async def run_event_stream(
    run_id: str,
    events: AsyncIterator[Event],
    *,
    last_event_id: str | None = None,
    keepalive: float = 15.0,
    closing: asyncio.Event | None = None,
) -> AsyncGenerator[bytes, None]:
    """The SSE body for ``events`` (see the module contract)."""
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=256)
    tasks = [asyncio.create_task(_pump(events, queue), name=f"sse pump {run_id}")]
    if closing is not None:
        tasks.append(asyncio.create_task(_close_on(closing, queue)))
    skipping = last_event_id is not None
    status: str | None = None
    try:
        yield b"retry: 2000\n\n"
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), keepalive)
            except TimeoutError:
                yield comment("keepalive")
                continue
            if item is _CLOSING:
                yield comment("server closing; reconnect with Last-Event-ID")
                return
            if item is _END:
                if skipping:  # the whole run went by without the client's last id
                    gone = f"Last-Event-ID {last_event_id!r} is not an event of run {run_id!r}"
                    yield message(json.dumps({"message": gone}), event="error")
                    return
                yield message(json.dumps({"run_id": run_id, "status": status}), event="end")
                return
            if isinstance(item, BaseException):
                yield message(json.dumps(_failure(run_id, item)), event="error")
                return
            assert isinstance(item, Event)
            if item.type in TERMINAL_EVENTS:
                status = TERMINAL_EVENTS[item.type].value
            if item.stream is Stream.LIVE:
                if not skipping:
                    yield message(exact_json.dumps(item).decode(), event=item.type.value)
                continue
            if skipping:
                skipping = item.event_id != last_event_id
                continue
            yield message(
                exact_json.dumps(item).decode(), event=item.type.value, event_id=item.event_id
            )
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _failure(run_id: str, error: BaseException) -> dict[str, object]:
    """What a client is told of a failed log read: its kind, not its words."""
    log.error("the event stream of run %s failed", run_id, exc_info=error)
    retriable = error.retriable if isinstance(error, RunwireError) else True
    return {
        "error": "unavailable" if retriable else "internal",
        "message": f"reading the log failed ({type(error).__name__}); reconnect with Last-Event-ID",
        "retriable": retriable,
    }
