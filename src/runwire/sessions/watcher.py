"""Feeds session listeners from the log, so they hear every writer, in any process.

Contract:
- One consumer (no group: every watcher sees everything) over the
  session-events and run-events topics, started with the first listener.
  It starts at the records written from the moment that listener was added
  (offsets by time), so a write made after ``listen`` returns is never
  missed, even while the consumer is still connecting. The end offsets are
  taken *before* the offsets by time: a partition with no record from that
  moment yet starts at that earlier end, so a write landing between the two
  lookups is not jumped over. Every record from there on is delivered,
  whatever its timestamp: a record's timestamp is its producer's clock,
  and one running behind must not hide a change made after ``listen`` (a
  write racing ``listen`` may be delivered, never one made after it lost).
- Records are decoded; those of sessions with listeners become
  :class:`~runwire.sessions.protocol.SessionChange` values
  (:func:`~runwire.sessions.callbacks.changes_of`) handed to the listeners
  on the watcher's loop. Changes from one topic come in log order; the
  session-events and run-events topics share no order, so changes from both
  that arrive in one fetch come in time order, and across fetches a session
  change may arrive before a message written just before it. A record that does
  not decode, or breaks the envelope (:mod:`runwire.log.envelope`), is
  skipped (the projections dead-letter it); one that cannot be
  decoded yet (a retriable error: the schema registry is down) is read again
  after a pause, and so is a broker failure.
- ``stop()`` is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from runwire.contract.codec import Codec, codec_for
from runwire.contract.events import Event
from runwire.contract.routing import streams_by_topic
from runwire.errors import RunwireError
from runwire.log import clients
from runwire.log.clients import topic_partitions
from runwire.log.records import decode_record
from runwire.sessions.callbacks import changes_of
from runwire.sessions.protocol import Listener
from runwire.settings import Settings

__all__ = ["LogWatcher"]

log = logging.getLogger(__name__)


class LogWatcher:
    """See the module contract."""

    def __init__(self, settings: Settings, *, codec: Codec | None = None) -> None:
        self._settings = settings
        self._streams = streams_by_topic(settings)
        self._codec = codec or codec_for(settings)
        self._listeners: dict[str, list[Listener]] = {}
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._since_ms: int | None = None

    def add(self, session_id: str, listener: Listener) -> None:
        self._listeners.setdefault(session_id, []).append(listener)
        if self._task is None:
            self._since_ms = int(time.time() * 1000)
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="runwire session watcher"
            )

    def remove(self, session_id: str, listener: Listener) -> None:
        found = self._listeners.get(session_id)
        if found and listener in found:
            found.remove(listener)
            if not found:
                del self._listeners[session_id]

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def _connect(self) -> Any:
        consumer = clients.consumer(
            self._settings,
            "session-watcher",
        )
        await consumer.start()
        try:
            tps: list[TopicPartition] = []
            for topic in (self._settings.session_events, self._settings.run_events):
                partitions = await topic_partitions(consumer, topic)
                tps += [TopicPartition(topic, p) for p in partitions]
            consumer.assign(tps)
            assert self._since_ms is not None
            # Ends first: an end taken after the lookup by time would pass over
            # a write that landed between the two (a change lost for good).
            ends = await consumer.end_offsets(tps)
            found = await consumer.offsets_for_times(dict.fromkeys(tps, self._since_ms))
            for tp in tps:
                at = found.get(tp)
                # The earlier of the two: a record stamped in the past by a clock
                # running behind may lie after the end, before the first stamped later.
                consumer.seek(tp, min(at.offset, ends[tp]) if at is not None else ends[tp])
        except BaseException:
            await consumer.stop()
            raise
        return consumer

    async def _run(self) -> None:
        while True:
            try:
                if self._consumer is None:
                    self._consumer = await self._connect()
                batch = await self._consumer.getmany(timeout_ms=100, max_records=2000)
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError, RunwireError) as e:
                log.warning("session watcher: reading the log failed, retrying: %s", e)
                await asyncio.sleep(0.5)
                continue
            if not self._dispatch(batch):
                # A record could not be decoded yet (the schema registry is
                # down): its partition is read again from it after a pause.
                await asyncio.sleep(0.5)

    def _dispatch(self, batch: dict[Any, list[Any]]) -> bool:
        """Feed the listeners; False when a partition was sought back to a record to retry."""
        by_session: dict[str, list[Event]] = {}
        complete = True
        for tp, records in batch.items():
            for record in records:
                if record.value is None:
                    continue
                try:
                    partitions = sorted(self._consumer.partitions_for_topic(tp.topic) or ())
                    event = decode_record(
                        self._codec, record, partitions, streams=self._streams
                    ).event
                except RunwireError as e:
                    if not e.retriable:
                        continue  # unreadable for good (the envelope too): dead-lettered
                    # Skipping it would lose a change a callback is owed.
                    log.warning(
                        "session watcher: cannot decode %s@%d yet: %s", tp, record.offset, e
                    )
                    assert self._consumer is not None
                    self._consumer.seek(tp, record.offset)
                    complete = False
                    break
                sid = event.session_id
                if sid is not None and sid in self._listeners:
                    by_session.setdefault(sid, []).append(event)
        for sid, events in by_session.items():
            # Two topics have no common order: within a fetch, the writers' time
            # order (stable, so each partition's own order is kept).
            events.sort(key=lambda e: e.occurred_at)
            for change in changes_of(events):
                for listener in list(self._listeners.get(sid, ())):
                    try:
                        listener(change)
                    except Exception:
                        log.exception("session %s: a listener failed", sid)
        return complete
