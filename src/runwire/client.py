"""The runs API for application code: start runs, follow, wait, cancel, resume.

Contract:
- ``async with Client(settings) as rw:`` — ``await rw.run(agent_id, prompt)``
  publishes ``run_started`` and the user's message(s) as one atomic batch on
  the run's partition and returns a :class:`RunHandle` (``run_id``, where the
  run begins in the log). ``prompt`` is text, or canonical messages (earlier
  assistant turns included) ending with the user message to answer.
- ``handle.events()`` iterates the run's events from the log — from its
  first event (or only new ones with ``from_start=False``) — and ends after
  the run's terminal event (``follow=True`` keeps going live after it;
  ``until_end=False`` with ``follow=False`` stops at the end of the log).
  "The end of the log" is asked of the broker when the stream is awaited or
  entered: ``live = await handle.events(from_start=False)`` (or ``async with
  handle.events(from_start=False) as live:``) returns once the end is known,
  so whatever is published after that, even before the first iteration, is
  read. A stream iterated without being awaited resolves it when the first
  event is asked for. The blocking twin resolves it in the call.
- ``handle.stream()`` is ``events()`` with the run's live events woven in
  (:mod:`runwire.transcript.live`): the answer being written as it streams
  (``live_chunk``), tools starting and finishing. It reads the run's events
  up to the log's end first (a late reader catches up on canonical events
  only), then joins the live topic at the time of the newest delta (its
  answer's chunks from their start) and follows both. A live event is
  yielded only while its answer is not yet in the log; the run's canonical
  events are all yielded, in log order, so a reader that lost chunks or came
  late still ends with exactly the canonical transcript. Ends after the
  terminal event. The live reader (a second consumer) starts on first use.
  It reads :data:`STREAM_HELD` events at most ahead of its reader (then the
  log's reader holds them back: :mod:`runwire.log.watcher`).
- ``handle.wait(timeout)`` returns a :class:`RunOutcome` once the log holds
  the run's terminal event (status, error, transcript). With a
  :class:`~runwire.projections.runs.reader.RunStore` given to the client it
  also waits until the run-status projection has applied that event, so a
  read of the store right after sees the final row (read-your-writes).
- ``handle.cancel()`` / ``rw.cancel(run_id)`` publishes ``run_canceled``;
  ``rw.resume(run_id, tool_results)`` publishes results for tool calls that
  no registered tool answers. Results have deterministic ids per
  (run, tool_use id), so a repeated resume is a harmless duplicate.
- Every event the client writes into an existing run (cancel, resume,
  pause, approvals, ``say``) carries the run's session, user and tenant, as
  the run's own events do: what makes the projections file it under the
  run (a tenant's run is keyed by its tenant) and what seals its content
  with the session's key. The client knows them for runs it started or read;
  else from the run-status store (``Client(runs=...)``), else from the
  run's first event in the log (at ``first_offset`` when given).
- ``rw.pause(run_id)`` publishes ``run_status_changed(paused)`` (refused for a
  run that has ended); ``rw.resume(run_id)`` lifts it with a status change
  caused by that pause event, back to the status the run reached (the
  services only take a resume of the pause in force).
- ``rw.tree(run_id)`` (with a run-status store given) is the run and its
  child runs, depth first.
- ``rw.approvals(run_id)`` lists the run's tool calls held for a person's
  decision; ``rw.approve(run_id, tool_use_id)`` / ``rw.deny(...)`` (or
  ``rw.decide(..., approved=...)``) publish
  ``approval_decided`` (refused with :class:`InputError` for a call that is
  not waiting); a denial reaches the model as an error tool_result.
- ``rw.transcript(run_id)`` is the run's canonical messages (the transcript
  cache, rebuilt from the log on a miss); ``as_of=OFFSET`` (a log offset of
  the run's partition) or ``turn=N`` gives them as they were then, read from
  the log (:mod:`runwire.projections.transcripts.history`).
- Every user→assistant round trip has a ``turn_id``: ``run`` opens one
  (``turn_id=`` or a new id, on ``handle.turn_id``), ``say`` another; the
  services' answers carry the turn of the event they answer.
- One log reader per client serves every handle (one consumer, partitions
  paused while nobody follows them).
- :class:`BlockingClient` is the same API for scripts without asyncio; it
  runs a client on its own event loop in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import OrderedDict
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Generator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar

from runwire.contract import ids
from runwire.contract.codec import Codec, codec_for
from runwire.contract.events import (
    TERMINAL_EVENTS,
    ApprovalDecided,
    ApprovalRequested,
    Event,
    EventType,
    RunCanceled,
    RunFailed,
    RunStarted,
    RunStatus,
    RunStatusChanged,
    SessionCreated,
    SessionForked,
    ToolResult,
    UserMessage,
    now,
)
from runwire.contract.run_lifecycle import RunLifecycle
from runwire.errors import InputError, NotStartedError, RunwireError
from runwire.log import Position, Publisher
from runwire.log.live import LIVE_FETCH_MAX_WAIT_MS, live_watcher
from runwire.log.watcher import RunWatcher
from runwire.settings import Settings
from runwire.transcript.ledger import build_messages_from_events, payloads_for_messages
from runwire.transcript.live import LiveView
from runwire.transcript.messages import Message, TextPart, ToolResultPart

if TYPE_CHECKING:
    from runwire.projections.runs.fold import Run
    from runwire.projections.runs.reader import RunStore
    from runwire.projections.transcripts.reader import TranscriptCache

__all__ = [
    "STREAM_HELD",
    "BlockingClient",
    "BlockingRunHandle",
    "Client",
    "EventStream",
    "RunHandle",
    "RunOutcome",
    "RunTimeoutError",
]

PRODUCER = "runwire-client"
WHOSE_KEPT = 4096
"""Runs whose owner a client remembers (the newest it started or read)."""
LIVE_JOIN_SLACK_MS = 5_000
"""How far before the newest delta a stream joins the live topic: clocks of the
writers may disagree by that much (chunks of earlier answers are not shown)."""

STREAM_HELD = 256
"""Events ``stream()`` reads ahead of its reader at most (a reader may stop reading)."""

T = TypeVar("T")


class _RunFold(Protocol):
    @property
    def events(self) -> int: ...

    def apply(self, event: Event) -> None: ...


_F = TypeVar("_F", bound=_RunFold)


class RunTimeoutError(RunwireError):
    """A run did not end within the time given to ``wait``."""

    retriable = True


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended, read from the log."""

    run_id: str
    status: RunStatus
    events: tuple[Event, ...]
    error: RunFailed | None = None

    @classmethod
    def of(cls, run_id: str, events: Sequence[Event]) -> RunOutcome:
        """The outcome the run's events (in log order) say."""
        last = events[-1] if events else None
        error = last.payload if last is not None and isinstance(last.payload, RunFailed) else None
        return cls(run_id=run_id, status=_status_of(events), events=tuple(events), error=error)

    @property
    def messages(self) -> list[Message]:
        """The run's canonical transcript."""
        return build_messages_from_events(self.events, self.run_id)

    @property
    def text(self) -> str:
        """The visible text of the run's last assistant message."""
        for message in reversed(self.messages):
            if message.role == "assistant":
                return message.text()
        return ""


# -- the shared log reader -------------------------------------------------------


# -- the API -----------------------------------------------------------------------


class RunHandle:
    """One run: follow it, wait for it, cancel it. Made by :class:`Client`."""

    def __init__(
        self,
        client: Client,
        run_id: str,
        *,
        session_id: str | None = None,
        partition: int,
        first_offset: int | None,
    ) -> None:
        self._client = client
        self.run_id = run_id
        self.session_id = session_id
        self.partition = partition
        self.first_offset = first_offset
        """Offset of the run's first event, when known (``None``: from the partition start)."""
        self.turn_id: str | None = None
        """The turn the run's prompt opened (set by :meth:`Client.run`)."""

    def __repr__(self) -> str:
        return f"RunHandle({self.run_id!r}, partition={self.partition})"

    def events(
        self, *, from_start: bool = True, until_end: bool = True, follow: bool = True
    ) -> EventStream:
        """The run's events in log order; see the module contract and :class:`EventStream`."""
        return EventStream(self, from_start=from_start, until_end=until_end, follow=follow)

    async def _bounds(self, *, from_start: bool, follow: bool) -> tuple[int, int | None]:
        """Where a read starts and (without ``follow``) stops: offsets asked of the broker now."""
        reader = self._client._reader_or_fail()
        end = None if from_start and follow else await reader.end_offset(self.partition)
        start = (self.first_offset or 0) if from_start else end
        assert start is not None
        return start, None if follow else end

    async def _follow(
        self, *, from_start: bool = True, until_end: bool = True, follow: bool = True
    ) -> AsyncIterator[tuple[int, Event]]:
        start, stop_at = await self._bounds(from_start=from_start, follow=follow)
        async for item in self._read(start, stop_at, until_end=until_end):
            yield item

    def _read(
        self, start: int, stop_at: int | None, *, until_end: bool
    ) -> AsyncGenerator[tuple[int, Event], None]:
        watcher = self._client._reader_or_fail()
        return watcher.events(self.run_id, self.partition, start, stop_at, until_terminal=until_end)

    async def stream(self, *, from_start: bool = True) -> AsyncGenerator[Event, None]:
        """The run's events and its live events; see the module contract."""
        reader = self._client._reader_or_fail()
        start, _ = await self._bounds(from_start=from_start, follow=True)
        view = LiveView()
        newest_delta: Event | None = None
        caught_up_at = await reader.end_offset(self.partition)
        # 1. Catch up on the log: canonical events only.
        async for offset, event in reader.events(
            self.run_id, self.partition, start, caught_up_at, until_terminal=True
        ):
            start = max(start, offset + 1)
            view.canonical(event)
            if event.type in (EventType.USER_MESSAGE, EventType.TOOL_RESULT):
                newest_delta = event
            yield event
            if view.ended:
                return
        # 2. Join the live topic where the current answer began, follow both.
        live = await self._client._live_reader()
        live_partition = live.partition_of(self.run_id)
        since = newest_delta.occurred_at if newest_delta is not None else now()
        millis = int(since.timestamp() * 1000) - LIVE_JOIN_SLACK_MS
        live_start = await live.offset_at(live_partition, millis)
        queue: asyncio.Queue[tuple[bool, Event] | BaseException | None] = asyncio.Queue(
            maxsize=STREAM_HELD
        )

        async def pump(events: AsyncGenerator[tuple[int, Event], None], canonical: bool) -> None:
            try:
                async for _, event in events:
                    await queue.put((canonical, event))
                if canonical:
                    await queue.put(None)
            except Exception as e:
                await queue.put(e)
            finally:
                # Cancelled while parked on a full queue, the generator is suspended
                # at a yield: close it now so its subscription ends with the stream.
                await events.aclose()

        pumps = [
            asyncio.create_task(
                pump(reader.events(self.run_id, self.partition, start), True),
                name=f"stream {self.run_id}",
            ),
            asyncio.create_task(
                pump(
                    live.events(self.run_id, live_partition, live_start, until_terminal=False),
                    False,
                ),
                name=f"stream live {self.run_id}",
            ),
        ]
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                canonical, event = item
                if canonical:
                    view.canonical(event)
                    yield event
                elif view.live(event):
                    yield event
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)

    async def wait(self, timeout: float | None = None) -> RunOutcome:  # noqa: ASYNC109
        """The run's outcome once it ended; :class:`RunTimeoutError` after ``timeout`` s."""
        events: list[Event] = []
        position: int | None = None
        try:
            async with asyncio.timeout(timeout):
                async for offset, event in self._follow():
                    events.append(event)
                    position = offset
        except TimeoutError:
            status = _status_of(events)
            raise RunTimeoutError(
                f"run {self.run_id} did not end within {timeout}s (last status: {status.value}, "
                f"{len(events)} events read)"
            ) from None
        if position is not None and self._client.runs is not None:
            at = Position(self._client.settings.run_events, self.partition, position)
            await self._client.runs.wait_for(at, timeout=timeout or 10.0)
        return RunOutcome.of(self.run_id, events)

    async def cancel(self, reason: str | None = None) -> Position:
        return await self._client.cancel(self.run_id, reason=reason, first_offset=self.first_offset)

    async def pause(self, reason: str | None = None) -> Position:
        return await self._client.pause(self.run_id, reason=reason, first_offset=self.first_offset)

    async def resume(
        self, tool_results: Mapping[str, Any] | Sequence[ToolResultPart] | None = None
    ) -> list[Position]:
        """Let the run go on: lift its pause, or (with ``tool_results``) answer its tools."""
        return await self._client.resume(self.run_id, tool_results, first_offset=self.first_offset)


class EventStream(AsyncIterator[Event]):
    """A run's events from the log, as returned by :meth:`RunHandle.events`.

    An async iterator (``async for``, ``anext``, ``aclose``). Awaiting it
    (``live = await handle.events(from_start=False)``) or entering it
    (``async with ... as live``) resolves where it starts — the log's end at
    that moment with ``from_start=False`` — and returns the stream, so
    nothing published after the await is missed, however late the first
    iteration comes. Not awaited, it resolves on the first ``anext``.
    ``async with`` also closes it on exit; otherwise close it with
    ``aclose()`` when done before its end (the log reader keeps its
    partition fetched while a stream is open).
    """

    def __init__(
        self, handle: RunHandle, *, from_start: bool, until_end: bool, follow: bool
    ) -> None:
        self._handle = handle
        self._from_start = from_start
        self._until_end = until_end
        self._follow = follow
        self._bounds: tuple[int, int | None] | None = None
        self._resolving = asyncio.Lock()
        self._events: AsyncGenerator[tuple[int, Event], None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        where = "unresolved" if self._bounds is None else f"from offset {self._bounds[0]}"
        return f"EventStream({self._handle.run_id!r}, {where})"

    async def start(self) -> Self:
        """Resolve where the stream starts (and, without ``follow``, stops); idempotent."""
        async with self._resolving:
            if self._bounds is None:
                self._bounds = await self._handle._bounds(
                    from_start=self._from_start, follow=self._follow
                )
        return self

    def __await__(self) -> Generator[Any, None, Self]:
        return self.start().__await__()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        if self._closed:
            raise StopAsyncIteration
        if self._events is None:
            await self.start()
            assert self._bounds is not None
            start, stop_at = self._bounds
            if self._events is None:
                self._events = self._handle._read(start, stop_at, until_end=self._until_end)
        _, event = await anext(self._events)
        return event

    async def aclose(self) -> None:
        """Stop reading (the reader pauses the partition when nobody else follows it)."""
        self._closed = True
        if self._events is not None:
            await self._events.aclose()


@dataclass
class _Held:
    """A run's lifecycle and its tool calls held for approval and not decided yet."""

    lifecycle: RunLifecycle = field(default_factory=RunLifecycle)
    awaiting_approval: dict[str, str] = field(default_factory=dict)
    """Tool call id -> tool name."""

    @property
    def events(self) -> int:
        return self.lifecycle.events

    def apply(self, event: Event) -> None:
        self.lifecycle.apply(event)
        payload = event.payload
        if self.lifecycle.ended:
            self.awaiting_approval.clear()
        elif isinstance(payload, ApprovalRequested):
            self.awaiting_approval[payload.tool_use_id] = payload.tool_name
        elif isinstance(payload, ApprovalDecided | ToolResult):
            self.awaiting_approval.pop(payload.tool_use_id, None)


def _status_of(events: Sequence[Event]) -> RunStatus:
    status = RunStatus.PENDING
    for event in events:
        if event.type in TERMINAL_EVENTS:
            return TERMINAL_EVENTS[event.type]
        if isinstance(event.payload, RunStatusChanged):
            status = event.payload.status
    return status


@dataclass(frozen=True, slots=True)
class _Whose:
    """Whose a run is: the envelope fields every event written into it carries."""

    session_id: str | None = None
    user_id: str | None = None
    tenant: str | None = None

    @classmethod
    def of(cls, event: Event) -> _Whose:
        return cls(event.session_id, event.user_id, event.tenant)

    def envelope(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "user_id": self.user_id, "tenant": self.tenant}


class Client:
    """The runs API; see the module contract."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        publisher: Publisher | None = None,
        runs: RunStore | None = None,
        codec: Codec | None = None,
        producer: str = PRODUCER,
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        self._publisher = publisher
        self._own_publisher = publisher is None
        self.runs = runs
        self._codec = codec or codec_for(self.settings)
        self._producer = producer
        self._reader: RunWatcher | None = None
        self._live: RunWatcher | None = None
        self._live_starting = asyncio.Lock()
        self._locks: dict[int, asyncio.Lock] = {}
        self._started = False
        self._cache: TranscriptCache | None = None
        self._whose: OrderedDict[str, _Whose] = OrderedDict()

    async def start(self) -> None:
        if self._started:
            return
        if self._publisher is None:
            self._publisher = Publisher(self.settings)
        if self._own_publisher:
            await self._publisher.start()
        # Short fetches: a stream joins a partition while a fetch may be in flight,
        # and a reader of a run that just started waits for the next one.
        reader = RunWatcher(
            self.settings,
            self._codec,
            purpose="client",
            fetch_max_wait_ms=LIVE_FETCH_MAX_WAIT_MS,
        )
        try:
            await reader.start()
        except BaseException:
            if self._own_publisher:
                await self._publisher.stop()
            raise
        self._reader = reader
        self._started = True

    async def stop(self) -> None:
        """Stop reading and (if the client made it) the publisher. Idempotent."""
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.stop()
        live, self._live = self._live, None
        if live is not None:
            await live.stop()
        cache, self._cache = self._cache, None
        if cache is not None:
            await cache.close()
        if self._own_publisher and self._publisher is not None:
            await self._publisher.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _reader_or_fail(self) -> RunWatcher:
        if self._reader is None:
            raise NotStartedError("the client is not started: use `async with Client(settings)`")
        return self._reader

    async def _live_reader(self) -> RunWatcher:
        """The live topic's reader, started on first use (most clients never stream)."""
        self._reader_or_fail()
        async with self._live_starting:
            if self._live is None:
                live = live_watcher(self.settings, self._codec, purpose="client-live")
                await live.start()
                self._live = live
        return self._live

    def _publisher_or_fail(self) -> Publisher:
        if self._publisher is None or not self._started:
            raise NotStartedError("the client is not started: use `async with Client(settings)`")
        return self._publisher

    async def run(
        self,
        agent_id: str | None,
        prompt: str | Sequence[Message],
        *,
        session_id: str | None = None,
        turn_id: str | None = None,
        user_id: str | None = None,
        tenant: str | None = None,
        labels: Mapping[str, str] | None = None,
        run_id: str | None = None,
    ) -> RunHandle:
        """Start a run: ``run_started`` + the prompt, atomically; see the module contract."""
        publisher = self._publisher_or_fail()
        run_id = run_id or ids.new_event_id()
        # Every round trip has a turn: the orchestrator's answers carry it too.
        turn_id = turn_id or ids.new_event_id()
        if isinstance(prompt, str):
            messages: Sequence[Message] = [Message(role="user", parts=(TextPart(text=prompt),))]
        else:
            messages = prompt
        if not messages or messages[-1].role != "user":
            raise InputError("prompt", "a run's prompt must end with a user message")
        envelope: dict[str, Any] = {
            "run_id": run_id,
            "session_id": session_id,
            "agent_id": agent_id,
            "turn_id": turn_id,
            "user_id": user_id,
            "tenant": tenant,
            "producer": self._producer,
        }
        start = Event.create(
            RunStarted(agent_id=agent_id, labels=dict(labels or {})),
            causation_id=None,
            **envelope,
        )
        body = [
            Event.create(payload, causation_id=start.event_id, index=i, **envelope)
            for i, payload in enumerate(payloads_for_messages(messages))
        ]
        # One batch at a time per partition: aiokafka fails callers queued
        # behind many record batches for one partition (see publish_retrying).
        lock = self._locks.setdefault(self._reader_or_fail().partition_of(run_id), asyncio.Lock())
        async with lock:
            positions = await publisher.publish_message([start, *body])
        self._learn(run_id, _Whose.of(start))
        first = positions[0]
        handle = RunHandle(
            self,
            run_id,
            session_id=session_id,
            partition=first.partition,
            first_offset=first.offset,
        )
        handle.turn_id = turn_id
        return handle

    def handle(
        self, run_id: str, *, session_id: str | None = None, first_offset: int | None = None
    ) -> RunHandle:
        """A handle on an existing run (its events are read from ``first_offset``, or from
        the start of its partition when unknown)."""
        reader = self._reader_or_fail()
        return RunHandle(
            self,
            run_id,
            session_id=session_id,
            partition=reader.partition_of(run_id),
            first_offset=first_offset,
        )

    async def cancel(
        self, run_id: str, *, reason: str | None = None, first_offset: int | None = None
    ) -> Position:
        """Publish ``run_canceled``: the orchestrator aborts the run's model call."""
        whose = await self._whose_run(run_id, first_offset)
        event = Event.create(
            RunCanceled(reason=reason), run_id=run_id, producer=self._producer, **whose.envelope()
        )
        return await self._publisher_or_fail().publish(event)

    def _learn(self, run_id: str, whose: _Whose) -> _Whose:
        kept = self._whose
        kept[run_id] = whose
        kept.move_to_end(run_id)
        if len(kept) > WHOSE_KEPT:
            kept.popitem(last=False)
        return whose

    async def _whose_run(self, run_id: str, first_offset: int | None) -> _Whose:
        """Whose the run is (see the module contract); nobody's when the log does not
        hold it (the event is then written as the caller made it)."""
        known = self._whose.get(run_id)
        if known is not None:
            return known
        if self.runs is not None:
            with contextlib.suppress(RunwireError):
                row = await self.runs.get(run_id)
                return self._learn(run_id, _Whose(row.session_id, row.user_id, row.tenant))
        stream = self.handle(run_id, first_offset=first_offset).events(
            until_end=False, follow=False
        )
        async with contextlib.aclosing(stream):
            async for event in stream:  # the run's first event names its owner
                return self._learn(run_id, _Whose.of(event))
        return _Whose()

    async def resume(
        self,
        run_id: str,
        tool_results: Mapping[str, Any] | Sequence[ToolResultPart] | None = None,
        *,
        first_offset: int | None = None,
    ) -> list[Position]:
        """Let a run go on.

        With ``tool_results`` (by tool_use id): publish results for tool calls no
        tool runner answers. Without: lift the run's pause (a
        ``run_status_changed`` caused by the pause event, back to the status the
        run had reached); :class:`RunwireError` when the run is not paused.
        """
        if tool_results is None:
            return [await self._unpause(run_id, first_offset)]
        if isinstance(tool_results, Mapping):
            parts = [ToolResultPart(tool_use_id=k, content=v) for k, v in tool_results.items()]
        else:
            parts = list(tool_results)
        if not parts:
            return []
        envelope = (await self._whose_run(run_id, first_offset)).envelope()
        events = [
            Event.create(
                ToolResult(tool_use_id=p.tool_use_id, content=p.content, is_error=p.is_error),
                run_id=run_id,
                producer=self._producer,
                event_id=ids.deterministic_event_id(run_id, f"tool_result:{p.tool_use_id}", 0),
                **envelope,
            )
            for p in parts
        ]
        return await self._publisher_or_fail().publish_many(events)

    async def tree(self, run_id: str) -> list[tuple[int, Run]]:
        """The run and the child runs it started (agents as tools), depth first, from the
        run-status store given to the client (``Client(runs=...)``)."""
        if self.runs is None:
            raise NotStartedError("Client.tree reads the run-status store: pass Client(runs=...)")
        return await self.runs.tree(run_id)

    async def approvals(self, run_id: str, *, first_offset: int | None = None) -> dict[str, str]:
        """The run's tool calls waiting for a decision: tool_use id -> tool name."""
        return dict((await self._read_run(run_id, first_offset, _Held())).awaiting_approval)

    async def approve(
        self,
        run_id: str,
        tool_use_id: str,
        *,
        reason: str | None = None,
        decided_by: str | None = None,
    ) -> Position:
        """Let a held tool call run."""
        return await self.decide(
            run_id, tool_use_id, approved=True, reason=reason, decided_by=decided_by
        )

    async def deny(
        self,
        run_id: str,
        tool_use_id: str,
        *,
        reason: str | None = None,
        decided_by: str | None = None,
    ) -> Position:
        """Refuse a held tool call: the model gets an error result saying so (and ``reason``)."""
        return await self.decide(
            run_id, tool_use_id, approved=False, reason=reason, decided_by=decided_by
        )

    async def decide(
        self,
        run_id: str,
        tool_use_id: str,
        *,
        approved: bool,
        reason: str | None = None,
        decided_by: str | None = None,
        first_offset: int | None = None,
    ) -> Position:
        """Publish ``approval_decided`` for a held tool call (:class:`InputError` when the
        run holds no such call)."""
        held = await self._read_run(run_id, first_offset, _Held())
        if tool_use_id not in held.awaiting_approval:
            waiting = ", ".join(map(repr, held.awaiting_approval)) or "none"
            raise InputError(
                "tool_use_id",
                f"run {run_id} has no tool call {tool_use_id!r} waiting for approval "
                f"(it is {held.lifecycle.status.value}; waiting: {waiting})",
            )
        event = Event.create(
            ApprovalDecided(
                tool_use_id=tool_use_id, approved=approved, reason=reason, decided_by=decided_by
            ),
            run_id=run_id,
            producer=self._producer,
            # One decision per call: a repeat is a duplicate, a racing other
            # decision the same id with another body (the first one counts).
            event_id=ids.deterministic_event_id(run_id, f"approval:{tool_use_id}", 0),
            **(await self._whose_run(run_id, first_offset)).envelope(),
        )
        return await self._publisher_or_fail().publish(event)

    async def pause(
        self, run_id: str, *, reason: str | None = None, first_offset: int | None = None
    ) -> Position:
        """Pause a run: the services take no new action for it until :meth:`resume`.

        A model call or tool already running finishes and is recorded; what
        would follow it waits. :class:`RunwireError` when the run has ended.
        """
        lifecycle = await self._lifecycle(run_id, first_offset)
        if lifecycle.ended:
            raise RunwireError(
                f"run {run_id} has ended ({lifecycle.status.value}); only a run in progress "
                "can be paused"
            )
        event = Event.create(
            RunStatusChanged(status=RunStatus.PAUSED, reason=reason or "paused"),
            run_id=run_id,
            producer=self._producer,
            **(await self._whose_run(run_id, first_offset)).envelope(),
        )
        return await self._publisher_or_fail().publish(event)

    async def _unpause(self, run_id: str, first_offset: int | None) -> Position:
        lifecycle = await self._lifecycle(run_id, first_offset)
        if lifecycle.paused_by is None:
            raise RunwireError(
                f"run {run_id} is not paused (it is {lifecycle.status.value}); nothing to resume"
            )
        event = Event.create(
            RunStatusChanged(status=lifecycle.status, reason="resumed"),
            run_id=run_id,
            producer=self._producer,
            causation_id=lifecycle.paused_by,
            # One resume per pause: resuming twice writes the same event.
            event_id=ids.deterministic_event_id(run_id, lifecycle.paused_by, 0),
            **(await self._whose_run(run_id, first_offset)).envelope(),
        )
        return await self._publisher_or_fail().publish(event)

    async def _lifecycle(self, run_id: str, first_offset: int | None) -> RunLifecycle:
        """Where the run stands, from its events in the log (up to the log's end now)."""
        return await self._read_run(run_id, first_offset, RunLifecycle())

    async def _read_run(self, run_id: str, first_offset: int | None, fold: _F) -> _F:
        """``fold`` after every event of the run in the log (up to the log's end now)."""
        if first_offset is None and self.runs is not None:
            with contextlib.suppress(RunwireError):
                first_offset = (await self.runs.get(run_id)).first_offset
        handle = self.handle(run_id, first_offset=first_offset)
        async for event in handle.events(until_end=False, follow=False):
            if not fold.events and run_id not in self._whose:
                self._learn(run_id, _Whose.of(event))
            fold.apply(event)
        if not fold.events:
            raise RunwireError(f"run {run_id} is not in the log ({self.settings.run_events})")
        return fold

    async def declare_session(
        self,
        session_id: str,
        *,
        user_id: str | None,
        tenant: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Position:
        """Publish ``session_created`` for ``user_id``: the first one in the session's
        partition makes its owner (:mod:`runwire.projections.sessions.owner`)."""
        event = Event.create(
            SessionCreated(user_id=user_id, metadata=dict(metadata or {})),
            session_id=session_id,
            user_id=user_id,
            tenant=tenant,
            producer=self._producer,
        )
        return await self._publisher_or_fail().publish(event)

    async def transcript(
        self, run_id: str, *, as_of: int | None = None, turn: int | None = None
    ) -> list[Message]:
        """The run's messages now, or as of log offset ``as_of`` / the end of ``turn``."""
        self._reader_or_fail()
        if self._cache is None:
            from runwire.projections.transcripts.reader import TranscriptCache

            self._cache = TranscriptCache(self.settings, runs=self.runs)
        if as_of is None and turn is None:
            return await self._cache.get(run_id)
        return (await self._cache.get_at(run_id, offset=as_of, turn=turn)).messages

    async def fork_session(
        self,
        session_id: str,
        forked: SessionForked,
        *,
        user_id: str | None,
        tenant: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Position:
        """Publish a fork: ``session_created`` for ``user_id`` then ``forked``, in the
        new session's partition (plan it with :func:`runwire.sessions.forks.plan_fork`)."""
        envelope: dict[str, Any] = {
            "session_id": session_id,
            "user_id": user_id,
            "tenant": tenant,
            "producer": self._producer,
        }
        created = Event.create(
            SessionCreated(user_id=user_id, metadata=dict(metadata or {})), **envelope
        )
        positions = await self._publisher_or_fail().publish_many(
            [created, Event.create(forked, causation_id=created.event_id, **envelope)]
        )
        return positions[-1]

    async def say(
        self,
        run_id: str,
        text: str,
        *,
        turn_id: str | None = None,
        first_offset: int | None = None,
    ) -> Position:
        """Publish more user text into a run (answered with its next delta), as a new
        turn (``turn_id``, a new id by default: the answer carries it too)."""
        event = Event.create(
            UserMessage(parts=[text]),
            run_id=run_id,
            turn_id=turn_id or ids.new_event_id(),
            producer=self._producer,
            **(await self._whose_run(run_id, first_offset)).envelope(),
        )
        return await self._publisher_or_fail().publish(event)


# -- the blocking twin -------------------------------------------------------------


class BlockingRunHandle:
    """:class:`RunHandle` for code without asyncio."""

    def __init__(self, owner: BlockingClient, handle: RunHandle) -> None:
        self._owner = owner
        self._handle = handle
        self.run_id = handle.run_id

    def wait(self, timeout: float | None = None) -> RunOutcome:
        return self._owner._call(self._handle.wait(timeout))

    def events(
        self, *, from_start: bool = True, follow: bool = True
    ) -> Generator[Event, None, None]:
        """The run's events; with ``from_start=False``, those after the log's end at this call.

        ``close()`` the generator when done before the run's end.
        """
        stream = self._owner._call(
            self._handle.events(from_start=from_start, follow=follow).start()
        )
        return self._iterate(stream)

    def _iterate(self, stream: EventStream) -> Generator[Event, None, None]:
        try:
            while True:
                try:
                    yield self._owner._call(stream.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._owner._call(stream.aclose())

    def cancel(self, reason: str | None = None) -> Position:
        return self._owner._call(self._handle.cancel(reason))


class BlockingClient:
    """The runs API for scripts: ``with BlockingClient() as rw: rw.run(...).wait()``.

    Runs a :class:`Client` on its own event loop in a daemon thread; every
    method blocks until the loop has done the work.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self._client = Client(settings)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="runwire-client", daemon=True
        )
        self._open = False

    def _call(self, work: Awaitable[T]) -> T:
        async def run() -> T:
            return await work

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result()

    def start(self) -> None:
        if self._open:
            return
        self._thread.start()
        self._call(self._client.start())
        self._open = True

    def close(self) -> None:
        """Stop the client and its loop; safe to call twice."""
        if not self._open:
            return
        self._open = False
        try:
            self._call(self._client.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def run(
        self, agent_id: str | None, prompt: str | Sequence[Message], **kwargs: Any
    ) -> BlockingRunHandle:
        return BlockingRunHandle(self, self._call(self._client.run(agent_id, prompt, **kwargs)))

    def handle(self, run_id: str) -> BlockingRunHandle:
        return BlockingRunHandle(self, self._client.handle(run_id))

    def cancel(self, run_id: str, *, reason: str | None = None) -> Position:
        return self._call(self._client.cancel(run_id, reason=reason))

    def resume(
        self,
        run_id: str,
        tool_results: Mapping[str, Any] | Sequence[ToolResultPart] | None = None,
    ) -> list[Position]:
        return self._call(self._client.resume(run_id, tool_results))

    def pause(self, run_id: str, *, reason: str | None = None) -> Position:
        return self._call(self._client.pause(run_id, reason=reason))

    def approvals(self, run_id: str) -> dict[str, str]:
        return self._call(self._client.approvals(run_id))

    def decide(self, run_id: str, tool_use_id: str, **decision: Any) -> Position:
        return self._call(self._client.decide(run_id, tool_use_id, **decision))

    def transcript(
        self, run_id: str, *, as_of: int | None = None, turn: int | None = None
    ) -> list[Message]:
        return self._call(self._client.transcript(run_id, as_of=as_of, turn=turn))
