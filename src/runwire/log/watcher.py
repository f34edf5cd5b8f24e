"""The one live watcher: runs followed as they are written, many on one consumer.

Contract (:class:`RunWatcher`):
- One group-less consumer (``read_committed``) per watcher serves every
  subscription; a partition is fetched only while somebody follows it.
- ``subscribe(run_id, partition, start)`` delivers, in log order, every
  event of the run at or after ``start`` to the subscription
  (:meth:`Subscription.take`), and after every fetch of its partition moves
  its ``read_to``: how far the log has been read (so a reader that stops at
  a known offset knows when it got there).
- A subscription holds :data:`HELD_EVENTS` events or :data:`HELD_BYTES` of
  records at most, however slow its reader (an event stream's client that
  stops reading) and however large the run: when it is full, it is parked
  at the first event it did not take, and its partition is read again from
  there once its reader has taken half of what it held (others skip what
  they had; a partition whose subscriptions are all parked is not fetched).
- ``events(run_id, partition, start, stop_at=None, until_terminal=True)``
  iterates that: it ends after the run's terminal event (``until_terminal``),
  or once the log is read to ``stop_at``; leaving the iteration unsubscribes.
- In a tenant process (``settings.tenant``) only that tenant's records of
  the run are delivered: another tenant's events under the same run id (the
  log does not know whose a run id is) are passed over like other runs'.
  Records without a tenant (an operator's, a shared service's) are the
  run's once one of the tenant's was read, as every fold of a run has it
  (:func:`runwire.contract.run_lifecycle.foreign_to_run`). A process of
  every tenant (the HTTP API) passes over the events of tenants other than
  the run's (the first tenant its records read name) the same way.
- A record of the run that cannot be decoded or breaks the envelope is
  skipped (the projectors dead-letter it), and so is a repeat of an event
  already delivered to the subscription or its id with another body
  (:mod:`runwire.contract.identity`); one that cannot be decoded *yet* (the schema registry
  down: retriable) is read again after a pause, never skipped.
- ``partition_of(run_id)`` is the contract partitioner's choice;
  ``end_offset(partition)`` asks the broker now; ``offset_at(partition,
  millis)`` is the first offset written at or after that time (the end when
  none is).
- It follows the run-events topic, or ``topic`` when given (the live topic:
  :func:`runwire.log.live.live_watcher`), whose records are keyed by run id
  alike. ``fetch_max_wait_ms`` bounds how long a fetch waits for data: a
  partition subscribed to meanwhile is fetched from the next request on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from runwire.contract.events import TERMINAL_EVENTS
from runwire.contract.identity import StreamIds
from runwire.contract.routing import streams_by_topic
from runwire.contract.run_lifecycle import foreign_to_run
from runwire.errors import RunwireError
from runwire.lifecycle import AsyncService
from runwire.log import clients
from runwire.log.clients import topic_partitions
from runwire.log.partitioner import partition_for
from runwire.log.records import decode_record

if TYPE_CHECKING:
    from runwire.contract.codec import Codec
    from runwire.contract.events import Event
    from runwire.settings import Settings

__all__ = ["HELD_BYTES", "HELD_EVENTS", "RunWatcher", "Subscription", "follow_run"]

HELD_EVENTS = 4096
"""Events a subscription holds for its reader at most before it is parked: twice
a fetch (2,000 records), so a reader that keeps up is never parked."""
HELD_BYTES = 16 * 1024 * 1024
"""Record bytes a subscription holds for its reader at most before it is parked
(at least one event is always held, whatever its size); a fetch brings 1 MiB of
a partition at most."""


class _State(Enum):
    LIVE = "live"
    """Takes the partition's records as they are fetched."""
    FULL = "full"
    """Parked at ``next_offset`` until its reader has taken half of what it holds."""
    REWIND = "rewind"
    """Waiting for the reader's task to seek its partition back to ``next_offset``."""


@dataclass(eq=False)
class Subscription:
    run_id: str
    partition: int
    next_offset: int
    """The offset of the first record not looked at yet for this subscription."""
    read_to: int = -1
    """How far the log has been read for it: every event of the run before this
    offset has been delivered (-1: nothing fetched yet)."""
    held: deque[tuple[int, Event, int]] = field(default_factory=deque)
    """(offset, event, record bytes) delivered and not taken yet."""
    held_bytes: int = 0
    state: _State = _State.LIVE
    moved: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when an event is delivered or ``read_to`` moves."""
    ids: StreamIds = field(default_factory=StreamIds)
    """The run's ids delivered so far: repeats are dropped, other bodies refused."""
    ours: bool = False
    """In a tenant process: a record of its tenant was read, so the run is its tenant's."""
    tenant: str | None = None
    """In a process of every tenant: the run's tenant, the first one its records name."""
    rewinds: set[int] | None = None
    """The watcher's partitions to seek back (told when this one is unparked)."""

    @property
    def full(self) -> bool:
        return bool(self.held) and (len(self.held) >= HELD_EVENTS or self.held_bytes >= HELD_BYTES)

    def deliver(self, offset: int, event: Event, size: int) -> None:
        self.held.append((offset, event, size))
        self.held_bytes += size
        self.moved.set()

    def read_up_to(self, position: int) -> None:
        if position > self.read_to:
            self.read_to = position
            self.moved.set()

    async def get(self) -> tuple[int, Event]:
        """The next event delivered, waiting for it."""
        while (taken := self.take()) is None:
            await self.moved.wait()
        return taken

    def take(self) -> tuple[int, Event] | None:
        """The oldest event delivered and not taken, or None; a parked subscription
        whose reader has taken half of what it held asks to be read on."""
        if not self.held:
            self.moved.clear()
            return None
        offset, event, size = self.held.popleft()
        self.held_bytes -= size
        if (
            self.state is _State.FULL
            and len(self.held) <= HELD_EVENTS // 2
            and self.held_bytes <= HELD_BYTES // 2
        ):
            self.state = _State.REWIND
            if self.rewinds is not None:
                self.rewinds.add(self.partition)
        return offset, event


class RunWatcher(AsyncService):
    """Follows runs live for many readers at once; see the module contract."""

    def __init__(
        self,
        settings: Settings,
        codec: Codec,
        *,
        purpose: str = "watcher",
        topic: str | None = None,
        fetch_max_wait_ms: int = 500,
    ) -> None:
        self._settings = settings
        self._streams = streams_by_topic(settings)
        self._codec = codec
        self._purpose = purpose
        self._topic = topic or settings.run_events
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._subs: dict[int, set[Subscription]] = {}
        self._rewinds: set[int] = set()
        """Partitions with a subscription waiting to be read from further back."""
        self._partitions: list[int] = []
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        if self._consumer is not None:
            return
        consumer = clients.consumer(
            self._settings,
            self._purpose,
            fetch_max_wait_ms=self._fetch_max_wait_ms,
        )
        try:
            await consumer.start()
            self._partitions = await topic_partitions(consumer, self._topic)
        except BaseException:
            await consumer.stop()
            raise
        tps = [TopicPartition(self._topic, p) for p in self._partitions]
        consumer.assign(tps)
        consumer.pause(*tps)
        self._consumer = consumer
        self._task = asyncio.create_task(self._read(), name=f"runwire {self._purpose}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    def partition_of(self, run_id: str) -> int:
        """The partition the writer puts ``run_id``'s events on (the contract partitioner)."""
        return partition_for(run_id.encode(), self._partitions)

    async def end_offset(self, partition: int) -> int:
        tp = TopicPartition(self._topic, partition)
        ends: dict[TopicPartition, int] = await self._consumer.end_offsets([tp])
        return ends[tp]

    async def offset_at(self, partition: int, millis: int) -> int:
        """The first offset of ``partition`` written at or after ``millis`` (else the end)."""
        tp = TopicPartition(self._topic, partition)
        found = await self._consumer.offsets_for_times({tp: max(0, millis)})
        hit = found.get(tp)
        return int(hit.offset) if hit is not None else await self.end_offset(partition)

    async def subscribe(self, run_id: str, partition: int, start: int) -> Subscription:
        sub = Subscription(run_id, partition, start, rewinds=self._rewinds)
        tp = TopicPartition(self._topic, partition)
        async with self._lock:
            subs = self._subs.setdefault(partition, set())
            if not subs:
                self._consumer.seek(tp, start)
                self._consumer.resume(tp)
            else:
                if start < await self._consumer.position(tp):
                    self._consumer.seek(tp, start)  # the others skip what they already had
                self._consumer.resume(tp)  # paused while all the others were parked
            subs.add(sub)
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        async with self._lock:
            subs = self._subs.get(sub.partition)
            if subs is None:
                return
            subs.discard(sub)
            if not subs and self._consumer is not None:
                self._consumer.pause(TopicPartition(self._topic, sub.partition))

    async def events(
        self,
        run_id: str,
        partition: int,
        start: int,
        stop_at: int | None = None,
        *,
        until_terminal: bool = True,
    ) -> AsyncGenerator[tuple[int, Event], None]:
        """The run's ``(offset, event)`` from ``start`` on; see the module contract."""
        sub = await self.subscribe(run_id, partition, start)
        try:
            while True:
                taken = sub.take()
                if taken is None:
                    if stop_at is not None and sub.read_to >= stop_at:
                        return
                    await sub.moved.wait()
                    continue
                offset, event = taken
                yield offset, event
                if until_terminal and event.type in TERMINAL_EVENTS:
                    return
        finally:
            await self.unsubscribe(sub)

    async def _read(self) -> None:
        consumer = self._consumer
        tenant = self._settings.tenant  # a tenant process follows its own tenant's records only
        while True:
            try:
                await self._rewind()
                batch = await consumer.getmany(timeout_ms=100, max_records=2000)
            except KafkaError:
                await asyncio.sleep(0.5)
                continue
            retry = False
            for tp, records in batch.items():
                subs = self._subs.get(tp.partition)
                if not subs:
                    continue
                by_key: dict[bytes, list[Subscription]] = {}
                for sub in subs:
                    if sub.state is _State.LIVE:
                        by_key.setdefault(sub.run_id.encode(), []).append(sub)
                last = records[-1].offset + 1 if records else None
                for record in records:
                    wanted = by_key.get(record.key or b"")
                    if not wanted:
                        continue
                    event: Event | None = None
                    for sub in wanted:
                        if record.offset < sub.next_offset or sub.state is not _State.LIVE:
                            continue
                        if event is None:
                            try:
                                event = decode_record(
                                    self._codec, record, self._partitions, streams=self._streams
                                ).event
                            except RunwireError as e:
                                if e.retriable:
                                    # Not yet decodable (the schema registry is
                                    # down): read it again, never skip a run's event.
                                    consumer.seek(tp, record.offset)
                                    last, retry = record.offset, True
                                break
                        if tenant is not None:
                            if event.tenant == tenant:
                                sub.ours = True
                            elif event.tenant is not None or not sub.ours:
                                sub.next_offset = record.offset + 1
                                continue  # not this tenant's run, or not its record
                        elif foreign_to_run(event, sub.tenant):
                            sub.next_offset = record.offset + 1
                            continue  # another tenant's event under the run's id
                        else:
                            sub.tenant = sub.tenant or event.tenant
                        if sub.full:
                            # Parked here: read again from this record once taken.
                            sub.state = _State.FULL
                            sub.next_offset = record.offset
                            continue
                        sub.next_offset = record.offset + 1
                        try:
                            fresh = sub.ids.admit(event, record.key)
                        except RunwireError:
                            continue  # an id reused with another body: refused, as everywhere
                        if fresh:
                            sub.deliver(record.offset, event, len(record.value or b""))
                    if last == record.offset:
                        break  # sought back to it: the rest of this fetch comes again
                if last is not None:
                    for sub in subs:
                        if sub.state is _State.LIVE:
                            sub.next_offset = max(sub.next_offset, last)
                            sub.read_up_to(last)
                if all(sub.state is _State.FULL for sub in subs):
                    consumer.pause(tp)  # resumed by the rewind that unparks one
            # Partitions that returned nothing: tell followers where the log ends.
            for partition, subs in list(self._subs.items()):
                if not subs:
                    continue
                tp = TopicPartition(self._topic, partition)
                if tp in batch:
                    continue
                with contextlib.suppress(Exception):
                    position = await consumer.position(tp)
                    for sub in list(subs):
                        if sub.state is _State.LIVE and position >= sub.next_offset:
                            sub.read_up_to(position)
            if retry:
                await asyncio.sleep(0.5)

    async def _rewind(self) -> None:
        """Seek back every partition a subscription waits on, to the earliest offset
        any of them needs; they take records from the next fetch on."""
        if not self._rewinds:
            return
        async with self._lock:
            partitions = list(self._rewinds)
            self._rewinds.clear()
            for partition in partitions:
                waiting = [s for s in self._subs.get(partition, ()) if s.state is _State.REWIND]
                if not waiting:
                    continue
                tp = TopicPartition(self._topic, partition)
                target = min(s.next_offset for s in waiting)
                if target < await self._consumer.position(tp):
                    self._consumer.seek(tp, target)
                self._consumer.resume(tp)
                for sub in waiting:
                    sub.state = _State.LIVE


async def follow_run(
    settings: Settings,
    run_id: str,
    *,
    start: tuple[int, int] | None = None,
    idle_timeout: float | None = None,
    codec: Codec | None = None,
) -> AsyncGenerator[Event, None]:
    """Yield one run's events as they are written (``runwire transcript RUN --follow``).

    - From ``start`` (partition, first offset) when the caller knows where
      the run begins, else from the current end of the run's partition (a
      run that has not started yet).
    - Ends after the run's terminal event, or when ``idle_timeout`` passes
      without a new event of the run (None: never).
    """
    if codec is None:
        from runwire.contract.codec import codec_for

        codec = codec_for(settings)
    async with RunWatcher(settings, codec, purpose="follow") as watcher:
        if start is not None:
            partition, first = start
        else:
            partition = watcher.partition_of(run_id)
            first = await watcher.end_offset(partition)
        events = watcher.events(run_id, partition, first)
        try:
            while True:
                try:
                    async with asyncio.timeout(idle_timeout):
                        _, event = await anext(events)
                except (StopAsyncIteration, TimeoutError):
                    return
                yield event
        finally:
            await events.aclose()
