"""Follows the run-events topic for a service that acts on it (orchestrator, tool runner).

Contract:
- Joins the service's consumer group; Kafka shares the partitions among the
  group's instances. Reads with ``isolation_level=read_committed`` so records
  of aborted transactions are never acted on.
- Every record is decoded and handed to :meth:`FollowHandler.apply` in
  partition order; after each fetched batch :meth:`FollowHandler.batch_done`
  lets the handler act on what changed.
- A record that cannot be read (no value, a value that does not decode) is
  dead-lettered with the codec's reason, exactly as the projectors do
  (:mod:`runwire.projections.runtime.dead_letters`), and skipped: acting on
  it is impossible, and stalling on it would stall every run behind it. Its
  dead letter is written before any commit passes it.
- The loop is :func:`~runwire.services.lifecycle.vital`: an unexpected error
  in it ends the process with one line (never a live process doing nothing).
- **Catch-up before acting**: when a partition is assigned, the handler
  forgets it (:meth:`FollowHandler.assigned`), the follower reads it from
  the committed offset (the beginning when none) up to the end offset it had
  at assignment, and only then calls :meth:`FollowHandler.caught_up`. A
  handler acts on a partition's runs only after that call, so it never acts
  on a run before it has read what the log already says about it.
- **Commits are safe points**: the committed offset of a partition is
  :meth:`FollowHandler.safe_offset`, which the handler keeps at or below the
  first event it would need to rebuild its state (e.g. the first event of
  every run still in progress). Kafka's offsets are thus only a place to
  restart reading from; whether something was done is always read from the
  log itself.
- On revocation (rebalance, stop) the safe offsets are committed, then the
  handler is told (:meth:`FollowHandler.revoked`: it stops its work for
  those partitions before the next owner gets them).
- While started, it is a probe of the process (:mod:`runwire.telemetry.health`):
  alive while its loop runs, ready while caught up, its lag the log end
  minus its position; every record it decodes passes the log hooks
  (:mod:`runwire.log.hooks`: counts, trace context).
- ``start()`` / ``stop()`` (idempotent) or ``async with``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from runwire.contract.codec import Codec, codec_for
from runwire.contract.events import Event
from runwire.contract.routing import streams_by_topic
from runwire.errors import DecodeError, RunwireError
from runwire.log import clients, hooks
from runwire.log.envelope import check_envelope
from runwire.log.records import SourceRecord
from runwire.projections.runtime.dead_letters import (
    DeadLetterProducer,
    record_value,
    undecodable,
)
from runwire.projections.runtime.protocol import DeadLetterSink, Rejection
from runwire.services.lifecycle import AsyncService, describe_error, vital
from runwire.settings import Settings
from runwire.telemetry import health

__all__ = [
    "FollowHandler",
    "Follower",
    "FollowerOptions",
    "FollowingService",
    "consumer_group",
]

log = logging.getLogger(__name__)


def consumer_group(settings: Settings, service: str) -> str:
    """The consumer group of a service (prefixed like the topics)."""
    return f"{settings.topic_prefix}runwire-{service}"


class FollowHandler(Protocol):
    """What a service plugs into a :class:`Follower`."""

    def assigned(self, partitions: Collection[int]) -> None:
        """These partitions are now ours: forget anything known about them."""
        ...

    async def revoked(self, partitions: Collection[int]) -> None:
        """These partitions are no longer ours: stop all work on them before returning."""
        ...

    def apply(self, partition: int, offset: int, event: Event) -> None:
        """Fold one event (partition order); no I/O."""
        ...

    def batch_done(self) -> None:
        """A fetched batch was applied: act on what changed (caught-up partitions only)."""
        ...

    def caught_up(self, partition: int) -> None:
        """The partition has been read up to where it ended when it was assigned."""
        ...

    def safe_offset(self, partition: int, position: int) -> int:
        """The offset to commit for ``partition``, read up to ``position``."""
        ...


@dataclass(frozen=True, slots=True)
class FollowerOptions:
    """Consumer tuning. ``group_instance_id`` makes the member static, so a
    restarted instance takes its partitions back without waiting for the
    session timeout."""

    max_records: int = 2000
    poll_timeout_ms: int = 100
    commit_interval: float = 1.0
    retry_pause: float = 0.5
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
    group_instance_id: str | None = None


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, follower: Follower) -> None:
        self._follower = follower

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        await self._follower._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        self._follower._on_assigned(assigned)


class Follower(AsyncService):
    """Drives a :class:`FollowHandler` from the run-events topic; see the module contract."""

    def __init__(
        self,
        settings: Settings,
        handler: FollowHandler,
        *,
        group_id: str,
        codec: Codec | None = None,
        options: FollowerOptions | None = None,
        dead_letters: DeadLetterSink | None = None,
    ) -> None:
        self._settings = settings
        self._streams = streams_by_topic(settings)
        self._handler = handler
        self._group_id = group_id
        self._codec = codec or codec_for(settings)
        self._options = options or FollowerOptions()
        self._purpose = group_id  # the client id names the group it follows for
        self._topic = settings.run_events
        self._consumer: Any = None
        self._dead_letters = dead_letters
        self._own_dead_letters: DeadLetterProducer | None = None
        self._unsent: list[Rejection] = []
        """Dead letters not written yet: no commit passes them."""
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._stopped = False
        # Partition -> end offset to reach before acting (None: not asked yet).
        self._catching_up: dict[int, int | None] = {}
        self._owned: set[int] = set()
        """Partitions the handler was told are ours and not yet told are gone."""
        self._committed: dict[int, int] = {}
        self._last_commit = 0.0
        self.undecodable = 0
        self.caught_up_event = asyncio.Event()
        """Set while every assigned partition is caught up (for tests and readiness)."""
        self._probe: health.Probe | None = None

    @property
    def group_id(self) -> str:
        return self._group_id

    @property
    def consumer_name(self) -> str:
        """The service's name in its dead letters (``orchestrator``, ``tools``)."""
        return self._group_id.removeprefix(consumer_group(self._settings, ""))

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        opts = self._options
        if self._dead_letters is None:
            own = DeadLetterProducer(self._settings, self.consumer_name)
            try:
                await own.start()
            except KafkaError as e:
                await own.stop()
                raise RunwireError(
                    f"{self._group_id}: cannot reach Kafka at "
                    f"{self._settings.kafka_bootstrap_servers}: {e}"
                ) from e
            self._own_dead_letters = own
            self._dead_letters = own
        consumer = clients.consumer(
            self._settings,
            self._purpose,
            group_id=self._group_id,
            group_instance_id=opts.group_instance_id,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            session_timeout_ms=opts.session_timeout_ms,
            heartbeat_interval_ms=opts.heartbeat_interval_ms,
        )
        try:
            await consumer.start()
        except KafkaError as e:
            await consumer.stop()
            await self._stop_own_dead_letters()
            raise RunwireError(
                f"{self._group_id}: cannot reach Kafka at "
                f"{self._settings.kafka_bootstrap_servers}: {e}"
            ) from e
        consumer.subscribe([self._topic], listener=_Listener(self))
        self._consumer = consumer
        self._task = vital(asyncio.create_task(self._run(), name=f"follow {self._group_id}"))
        self._probe = health.register(
            health.Probe(self._group_id, self.readiness, self.liveness, self.lag)
        )

    async def stop(self) -> None:
        """Stop reading, let the handler stop its work, commit, leave. Idempotent."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        if self._probe is not None:
            health.unregister(self._probe)
        if self._task is not None:
            self._task.cancel()
            # A loop that died has been reported by vital(); do not raise it again.
            await asyncio.wait({self._task})
        consumer = self._consumer
        try:
            if consumer is not None:
                with contextlib.suppress(KafkaError, RunwireError):
                    await self._commit(force=True)
                owned, self._owned = self._owned, set()
                await self._handler.revoked(owned)
                await consumer.stop()
        finally:
            await self._stop_own_dead_letters()

    async def _stop_own_dead_letters(self) -> None:
        own, self._own_dead_letters = self._own_dead_letters, None
        if own is not None:
            await own.stop()

    async def wait_caught_up(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until partitions are assigned and every one of them is caught up;
        a :class:`RunwireError` if the loop died meanwhile (it will never catch up)."""
        async with asyncio.timeout(timeout):
            caught_up = asyncio.ensure_future(self.caught_up_event.wait())
            try:
                running = {self._task} if self._task is not None else set()
                await asyncio.wait({caught_up, *running}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                caught_up.cancel()
        task = self._task
        if not self.caught_up_event.is_set() and task is not None and task.done():
            error = None if task.cancelled() else task.exception()
            why = describe_error(error) if error is not None else "it was stopped"
            raise RunwireError(f"{self._group_id}: the follow loop ended before catching up: {why}")

    # -- probes (runwire.telemetry.health) ----------------------------------------

    def liveness(self) -> str | None:
        """None while the follow loop runs, else why not."""
        task = self._task
        if task is None:
            return "not started"
        if task.done():
            return "the follow loop ended"
        return None

    def readiness(self) -> str | None:
        """None once partitions are assigned and all caught up, else why not."""
        dead = self.liveness()
        if dead is not None:
            return dead
        if not self.caught_up_event.is_set():
            return "catching up with the log (or waiting for partitions)"
        return None

    async def lag(self) -> dict[tuple[str, str, int], int]:
        """Records between each assigned partition's log end and where this follower has read."""
        consumer = self._consumer
        if consumer is None:
            return {}
        assigned = list(consumer.assignment())
        if not assigned:
            return {}
        ends = await consumer.end_offsets(assigned)
        out: dict[tuple[str, str, int], int] = {}
        for tp in assigned:
            try:
                position = await consumer.position(tp)
            except KafkaError:
                continue  # being reassigned
            out[(self._group_id, tp.topic, tp.partition)] = max(0, ends.get(tp, 0) - position)
        return out

    # -- the loop ----------------------------------------------------------------

    async def _run(self) -> None:
        hooks.reader.set(self._group_id)  # this task's own copy: the hooks' consumer
        consumer = self._consumer
        opts = self._options
        while True:
            try:
                await self._resolve_targets()
                batch = await consumer.getmany(
                    timeout_ms=opts.poll_timeout_ms, max_records=opts.max_records
                )
                complete = self._apply(batch.items())
                await self._send_dead_letters()
                if not complete:
                    # A record could not be decoded for now (say the schema
                    # registry is down): it is read again after a pause.
                    await asyncio.sleep(opts.retry_pause)
                await self._check_caught_up()
                self._handler.batch_done()
                await self._commit()
            except asyncio.CancelledError:
                raise
            except KafkaError as e:
                log.warning("%s: Kafka error, retrying: %s", self._group_id, e)
                await asyncio.sleep(0.5)

    def _apply(self, batch: Iterable[tuple[TopicPartition, list[Any]]]) -> bool:
        """Hand the batch's events to the handler in order; False when a
        partition stopped at a record that may decode later (it is sought back to it)."""
        decode = self._codec.decode
        handler = self._handler
        complete = True
        for tp, records in batch:
            partitions = sorted(self._consumer.partitions_for_topic(tp.topic) or ())
            for record in records:
                try:
                    event = decode(record_value(record))
                    check_envelope(
                        record,
                        event if record.value is not None else None,
                        partitions,
                        self._streams,
                    )
                except DecodeError as e:
                    self.undecodable += 1
                    self._unsent.append(undecodable(tp.topic, record, e))
                    continue
                except RunwireError as e:
                    if not e.retriable:
                        raise
                    # Not the record's fault: never skip it, or a run would miss an event.
                    log.warning(
                        "%s: cannot decode the record at %s/%d yet, will retry: %s",
                        self._group_id,
                        tp.partition,
                        record.offset,
                        e,
                    )
                    self._consumer.seek(tp, record.offset)
                    complete = False
                    break
                if hooks.installed:
                    hooks.read(
                        SourceRecord(
                            tp.topic,
                            tp.partition,
                            record.offset,
                            record.timestamp,
                            record.key,
                            record.value or b"",
                            tuple(record.headers or ()),
                            event,
                        )
                    )
                handler.apply(tp.partition, record.offset, event)
        return complete

    async def _send_dead_letters(self) -> None:
        """Write the pending dead letters; they stay pending (and block commits) on failure."""
        if not self._unsent:
            return
        assert self._dead_letters is not None
        await self._dead_letters.send(self._unsent)
        self._unsent = []

    async def _resolve_targets(self) -> None:
        unknown = [p for p, end in self._catching_up.items() if end is None]
        if not unknown:
            return
        ends = await self._consumer.end_offsets([TopicPartition(self._topic, p) for p in unknown])
        for tp, end in ends.items():
            if tp.partition in self._catching_up:
                self._catching_up[tp.partition] = end
        await self._check_caught_up()

    async def _check_caught_up(self) -> None:
        for partition, end in list(self._catching_up.items()):
            if end is None:
                continue
            tp = TopicPartition(self._topic, partition)
            if tp not in self._consumer.assignment():
                continue
            if await self._consumer.position(tp) >= end:
                del self._catching_up[partition]
                self._handler.caught_up(partition)
        if not self._catching_up and self._consumer.assignment():
            self.caught_up_event.set()

    async def _commit(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_commit < self._options.commit_interval:
            return
        self._last_commit = now
        await self._send_dead_letters()
        consumer = self._consumer
        offsets: dict[TopicPartition, int] = {}
        for tp in consumer.assignment():
            if tp.partition not in self._owned or tp.partition in self._catching_up:
                continue  # not ours, or not read far enough to know what is safe
            safe = self._handler.safe_offset(tp.partition, await consumer.position(tp))
            if self._committed.get(tp.partition) != safe:
                offsets[tp] = safe
        if not offsets:
            return
        await consumer.commit(offsets)
        for tp, offset in offsets.items():
            self._committed[tp.partition] = offset

    # -- rebalances --------------------------------------------------------------

    def _on_assigned(self, assigned: Collection[TopicPartition]) -> None:
        partitions = [tp.partition for tp in assigned]
        self._handler.assigned(partitions)
        self._owned.update(partitions)
        for p in partitions:
            self._catching_up[p] = None
            self._committed.pop(p, None)
        if partitions:
            self.caught_up_event.clear()

    async def _on_revoked(self, revoked: Collection[TopicPartition]) -> None:
        partitions = [tp.partition for tp in revoked]
        # Commit while the handler still knows its runs (their safe offsets).
        try:
            await self._commit(force=True)
        except (KafkaError, RunwireError) as e:
            log.warning("%s: commit on revocation failed: %s", self._group_id, e)
        self._owned.difference_update(partitions)
        await self._handler.revoked(partitions)
        for p in partitions:
            self._catching_up.pop(p, None)
            self._committed.pop(p, None)


class FollowingService(AsyncService):
    """The lifecycle of a service that is a :class:`FollowHandler` for its own follower.

    Subclasses set ``self._follower = Follower(settings, self, ...)``.
    """

    _follower: Follower

    async def start(self) -> None:
        await self._follower.start()

    async def stop(self) -> None:
        """Stop following and every piece of work the service has in flight. Idempotent."""
        await self._follower.stop()

    async def wait_caught_up(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until the service owns partitions and has caught up on all of them."""
        await self._follower.wait_caught_up(timeout)
