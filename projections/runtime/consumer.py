"""The projector: drives one projection from Kafka, exactly-once in effect.

Contract:
- One consumer group per projection (``<topic_prefix>runwire-projector-<name>``)
  so every projection has its own pace and lag. Scale out by running more
  instances; partitions are shared among them by Kafka.
- Positions live in the projection's store, written with its rows
  (see :mod:`runwire.projections.runtime.protocol`). On every assignment the
  projector loads them and seeks there; Kafka's committed offsets are written
  after each apply (at most once per ``commit_interval``) only as a lag hint.
  The hint never runs ahead of what the projector has stored. After a clean
  ``stop()`` it equals the stored positions of every partition the instance
  owned: stop lets the batch being applied settle, then commits the stored
  positions (retrying while the group rebalances) before the consumer leaves
  the group. It trails when the process dies, when it was fenced out of the
  group, or when stop could not do that within ``stop_timeout`` (broker or
  store unreachable, a rebalance that does not settle); the next owner of a
  partition commits its stored position with its first hint after the
  assignment, so a trailing hint heals.
- Offsets that hold no record to apply (a transaction's commit or abort
  marker, an aborted transaction's records, a batch compaction emptied)
  move the stored position past them like applied records do, so a
  projection reaches the log end (lag 0) after them too.
- Every fetched record is decoded; a record that does not decode is written
  to the dead-letter topic (before the position moves past it) and the
  partition goes on. A batch whose apply fails for a reason that is not
  transient is re-applied one record at a time, and the records that still
  fail are dead-lettered: a bad record never stalls its partition.
- Transient failures (store or broker unreachable) are retried with backoff
  from the stored positions; nothing is skipped. Nothing is fetched after
  one until the stored positions of every owned partition have been loaded
  again (retried with the same backoff while the store is down), and the
  same after a batch found a partition's stored position elsewhere: a
  Postgres projection commits asynchronously, so a crash of the server may
  take back its last commits on any partition, including partitions no new
  record will come to. An idle projector (nothing fetched) compares the
  stored positions with its own at most once per ``audit_interval``, so a
  crash is noticed while nothing comes too.
- ``run()`` is pipelined: while one batch is applied, the next one gathers
  everything that arrives until the apply ends (up to ``max_records``), so a
  record waits for at most the apply under way and its own; a partition
  whose stored position differs from where it was read is read again from
  the stored position.
- ``assignment="all"`` reads every partition without a group (used by
  rebuilds): no rebalances, no committed offsets. ``partitions`` narrows it
  to some of them, so that several processes can fill one copy side by
  side, each its own partitions (a copy's positions are per partition).
- ``stop()`` is idempotent; ``async with`` starts and stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

from aiokafka import ConsumerRebalanceListener
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaError,
    MessageSizeTooLargeError,
)
from aiokafka.structs import TopicPartition as KafkaTopicPartition

from runwire.contract.routing import streams_by_topic
from runwire.errors import ConfigurationError, DecodeError, NotStartedError, RunwireError
from runwire.log import clients, hooks
from runwire.log.envelope import check_envelope
from runwire.log.records import SourceRecord, TopicPartition
from runwire.projections.runtime import timings
from runwire.projections.runtime.dead_letters import (
    DeadLetterProducer,
    record_value,
    undecodable,
)
from runwire.projections.runtime.protocol import (
    ApplyResult,
    Batch,
    DeadLetterSink,
    Fault,
    Projection,
    ProjectionError,
    Rejection,
)
from runwire.settings import Settings
from runwire.telemetry import tracing
from runwire.telemetry.metrics import HANDLER_SECONDS

if TYPE_CHECKING:
    from runwire.contract.events import Event

log = logging.getLogger(__name__)

_YIELD_EVERY = 32
"""Records decoded between yields to the loop: the apply under way resumes as
soon as its results arrive, not after a whole fetch is decoded."""


class Decoder(Protocol):
    """Bytes to event; raises :class:`runwire.errors.DecodeError` with a reason."""

    def decode(self, data: bytes) -> Event: ...


def consumer_group(settings: Settings, projection_name: str) -> str:
    """The consumer group of a projection (prefixed like the topics)."""
    return f"{settings.topic_prefix}runwire-projector-{projection_name}"


def _fault(error: BaseException, projection: object | None) -> Fault | None:
    fault_of = getattr(projection, "fault_of", None)
    return fault_of(error) if fault_of is not None else None


def is_transient(error: BaseException, projection: object | None = None) -> bool:
    """True for failures of the infrastructure: retried from the stored positions, forever.

    The projection's own ``fault_of`` judges its store's errors first.
    """
    fault = _fault(error, projection)
    if fault is not None:
        return fault is Fault.TRANSIENT
    if isinstance(error, RunwireError):
        return error.retriable
    if isinstance(error, MessageSizeTooLargeError):
        return False  # the same record is too large on every retry
    if isinstance(error, KafkaError):
        return True  # broker trouble is never the record's fault
    return isinstance(error, OSError | TimeoutError | ConnectionError)


def caused_by_record(error: BaseException, projection: object | None = None) -> bool:
    """True when a failed apply may be the fault of a record in the batch.

    Such a batch is re-applied record by record and the records that still
    fail are dead-lettered. A value the store refuses (its ``fault_of`` says
    ``RECORD``) and plain Python errors raised while folding count;
    infrastructure failures (:func:`is_transient`), :class:`ProjectionError`,
    configuration errors and the store's final errors do not.
    """
    fault = _fault(error, projection)
    if fault is not None:
        return fault is Fault.RECORD
    if is_transient(error) or isinstance(error, ProjectionError | ConfigurationError):
        return False
    return not isinstance(error, KafkaError)


async def cancel_and_wait(future: asyncio.Future[Any]) -> None:
    """Cancel ``future`` and wait until it has ended.

    - Its own cancellation is swallowed; the caller's is not: a task cancelled
      while it waits here ends cancelled (swallowing that, a cancelled run
      loop went on polling for ever and whoever awaited it hung).
    """
    future.cancel()
    try:
        await future
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise


@dataclass(slots=True)
class ProjectorStats:
    """Counters since start (for progress bars, status and tests)."""

    batches: int = 0
    records: int = 0
    applied: int = 0
    duplicates: int = 0
    skipped: int = 0
    undecodable: int = 0
    rejected: int = 0
    retries: int = 0
    assignments: int = 0
    hints: int = 0
    """Lag hints committed to the group (each a set of stored positions)."""
    last_batch_at: float = 0.0
    extra: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProjectorOptions:
    """Tuning knobs; the defaults suit both live serving and rebuilds."""

    max_records: int = 2000
    poll_timeout_ms: int = 200
    fetch_max_wait_ms: int = 100
    """How long the broker may hold a fetch that found nothing. aiokafka sends
    one fetch per broker at a time and leaves out partitions whose records
    are still buffered; a partition drained meanwhile is fetched again only
    when that fetch returns, so this bounds its wait on a quiet topic."""
    commit_interval: float = 1.0
    max_partition_fetch_bytes: int = 1_048_576
    fetch_max_bytes: int = 16 * 1_048_576
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
    group_instance_id: str | None = None
    retry_backoff: float = 0.2
    max_retry_backoff: float = 5.0
    stop_timeout: float = 10.0
    """How long ``stop()`` waits for the batch being applied, then for the last lag hint."""
    audit_interval: float = 5.0
    """How often an idle projector reads its stored positions to compare them
    with its own (one query): how long commits a crashed store took back can
    stay missing while no record comes."""


@dataclass(slots=True)
class _Fetched:
    """A fetched, decoded batch waiting to be applied."""

    records: list[SourceRecord] = field(default_factory=list)
    undecodable: list[Rejection] = field(default_factory=list)
    next_positions: dict[TopicPartition, int] = field(default_factory=dict)
    expected: dict[TopicPartition, int] = field(default_factory=dict)
    count: int = 0
    spans: list[timings.Span] = field(default_factory=list)
    """When each fetch's records were fetched and decoded (for :mod:`.timings`)."""

    def extend(self, more: _Fetched) -> None:
        """Append a later fetch of the same partitions (log order is kept per partition)."""
        self.records.extend(more.records)
        self.undecodable.extend(more.undecodable)
        self.spans.extend(more.spans)
        self.next_positions.update(more.next_positions)
        for tp, start in more.expected.items():
            self.expected.setdefault(tp, start)
        self.count += more.count

    def without(self, partitions: set[TopicPartition]) -> _Fetched | None:
        """The batch minus partitions that were sought elsewhere (None when nothing is left)."""
        kept = _Fetched(
            records=[r for r in self.records if r.tp not in partitions],
            undecodable=self.undecodable,
            next_positions={k: v for k, v in self.next_positions.items() if k not in partitions},
            expected={k: v for k, v in self.expected.items() if k not in partitions},
            count=self.count,
            spans=[s for s in self.spans if (s.topic, s.partition) not in partitions],
        )
        return kept if kept.next_positions else None


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, projector: Projector) -> None:
        self._projector = projector

    async def on_partitions_revoked(self, revoked: Collection[Any]) -> None:
        self._projector._forget(revoked)

    async def on_partitions_assigned(self, assigned: Collection[Any]) -> None:
        await self._projector._seek_to_stored(assigned)


def decoder_for(projection: Projection, settings: Settings | None = None) -> Decoder:
    """The decoder a projection asks for (its ``decoder`` attribute), else the default codec.

    A projection over a compacted topic needs one that understands tombstones
    (records without a value); every way of running a projection (``serve``,
    ``rebuild``, tests) goes through here so none of them can forget it.
    """
    own = getattr(projection, "decoder", None)
    if own is not None:
        return cast(Decoder, own)
    from runwire.contract.codec import codec_for, default_codec

    return default_codec() if settings is None else codec_for(settings)


class Projector:
    """Runs a :class:`Projection` against Kafka. See the module docstring."""

    def __init__(
        self,
        projection: Projection,
        settings: Settings,
        *,
        decoder: Decoder | None = None,
        dead_letters: DeadLetterSink | None = None,
        options: ProjectorOptions | None = None,
        assignment: Literal["group", "all"] = "group",
        partitions: Collection[TopicPartition] | None = None,
        on_batch: Callable[[Projector, ApplyResult], None] | None = None,
    ) -> None:
        self.projection = projection
        self._settings = settings
        self._streams = streams_by_topic(settings)
        self._decoder = decoder
        self._dead_letters = dead_letters
        self._own_dead_letters: DeadLetterProducer | None = None
        self._options = options or ProjectorOptions()
        self._assignment = assignment
        if partitions is not None and assignment != "all":
            raise ConfigurationError("partitions are only chosen with assignment='all'")
        self._only = None if partitions is None else frozenset(partitions)
        self._on_batch = on_batch
        self._consumer: Any = None
        self._stopping = asyncio.Event()
        self._started = False
        # Position the runner believes is stored per owned partition, and
        # where the consumer reads next (ahead of it while a batch is applied).
        self._expected: dict[TopicPartition, int] = {}
        self._next_fetch: dict[TopicPartition, int] = {}
        self._topic_partitions: dict[str, list[int]] = {}
        self._last_commit = float("-inf")  # the first hint goes at once
        self._uncommitted: dict[TopicPartition, int] = {}
        self._hint_task: asyncio.Future[None] | None = None
        # Set when the store's positions may differ from ours (a failed apply,
        # a partition found elsewhere): every owned one is loaded again before
        # the next fetch (see the module contract).
        self._reload = False
        self._last_audit = time.monotonic()
        # Set while run() is looping; stop() waits for it to settle its batch.
        self._run_task: asyncio.Task[Any] | None = None
        self._run_done: asyncio.Event | None = None
        self.stats = ProjectorStats()

    # -- lifecycle -------------------------------------------------------------

    @property
    def group_id(self) -> str | None:
        if self._assignment == "all":
            return None
        return consumer_group(self._settings, self.projection.name)

    async def start(self) -> None:
        """Connect, join the group (or assign every partition) and seek to stored positions."""
        if self._started:
            return
        if self._decoder is None:
            self._decoder = decoder_for(self.projection, self._settings)
        if self._dead_letters is None:
            self._own_dead_letters = DeadLetterProducer(self._settings, self.projection.name)
            await self._own_dead_letters.start()
            self._dead_letters = self._own_dead_letters
        opts = self._options
        consumer = clients.consumer(
            self._settings,
            f"projector-{self.projection.name}",
            group_id=self.group_id,
            group_instance_id=opts.group_instance_id if self._assignment == "group" else None,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=opts.max_partition_fetch_bytes,
            fetch_max_bytes=opts.fetch_max_bytes,
            session_timeout_ms=opts.session_timeout_ms,
            heartbeat_interval_ms=opts.heartbeat_interval_ms,
            fetch_max_wait_ms=opts.fetch_max_wait_ms,
        )
        await consumer.start()
        self._consumer = consumer
        self._started = True
        try:
            if self._assignment == "group":
                consumer.subscribe(topics=list(self.projection.topics), listener=_Listener(self))
            else:
                tps = await self.partitions()
                if self._only is not None:
                    unknown = self._only - set(tps)
                    if unknown:
                        raise ConfigurationError(
                            f"projection {self.projection.name!r} reads no partition "
                            + ", ".join(f"{tp.topic}/{tp.partition}" for tp in sorted(unknown))
                        )
                    tps = [tp for tp in tps if tp in self._only]
                # Positions first, then assign and seek with no wait between:
                # a partition assigned without a position makes the fetcher
                # ask the broker to reset it (a round trip, sometimes more,
                # that holds up the first fetch) before the seek lands.
                stored = await self.projection.load_positions(tps)
                consumer.assign([KafkaTopicPartition(tp.topic, tp.partition) for tp in tps])
                self.stats.assignments += 1
                self._seek(consumer, tps, stored)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Let the batch being applied settle, commit the last lag hint, leave the group, close.

        Safe to call twice. Waits at most ``stop_timeout`` for the run loop and
        as long again for the hint (see the module docstring for when it trails).
        """
        self._stopping.set()
        await self._wait_for_run_loop()
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                await self._last_hint(consumer)
            finally:
                await consumer.stop()
        own, self._own_dead_letters = self._own_dead_letters, None
        if own is not None:
            await own.stop()
            self._dead_letters = None

    async def __aenter__(self) -> Projector:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- introspection ---------------------------------------------------------

    async def partitions(self) -> list[TopicPartition]:
        """Every partition of the projection's topics (waits for metadata)."""
        consumer = self._require_consumer()
        out: list[TopicPartition] = []
        for topic in self.projection.topics:
            parts = consumer.partitions_for_topic(topic)
            if not parts:
                await consumer._client.force_metadata_update()
                parts = consumer.partitions_for_topic(topic)
            if not parts:
                raise RunwireError(
                    f"topic {topic!r} of projection {self.projection.name!r} does not exist "
                    f"on {self._settings.kafka_bootstrap_servers}"
                )
            out.extend(TopicPartition(topic, p) for p in sorted(parts))
        return out

    def assigned(self) -> set[TopicPartition]:
        """Partitions this instance currently reads."""
        if self._consumer is None:
            return set()
        return {TopicPartition(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def positions(self) -> dict[TopicPartition, int]:
        """Position this instance has stored (or loaded) per owned partition."""
        return dict(self._expected)

    async def end_offsets(self) -> dict[TopicPartition, int]:
        """The log end of every owned partition, asked of the broker now."""
        consumer = self._require_consumer()
        tps = list(consumer.assignment())
        if not tps:
            return {}
        ends = await consumer.end_offsets(tps)
        return {TopicPartition(tp.topic, tp.partition): off for tp, off in ends.items()}

    async def lag(self) -> dict[TopicPartition, int]:
        """Records between each owned partition's stored position and its log end."""
        ends = await self.end_offsets()
        return {tp: max(0, end - self._expected.get(tp, 0)) for tp, end in ends.items()}

    # -- running ---------------------------------------------------------------

    async def run(self) -> None:
        """Fetch and apply until :meth:`stop` is called (or the task is cancelled).

        Pipelined: while a batch is being applied (the store's round trips),
        the next one is fetched and decoded. A prefetched partition whose
        stored position turned out different from where it was read is
        fetched again from the stored position.
        """
        if not self._started:
            raise NotStartedError("Projector.run() needs start() first (or `async with`)")
        self._run_task, self._run_done = asyncio.current_task(), asyncio.Event()
        try:
            await self._run()
        finally:
            self._run_done.set()

    async def _run(self) -> None:
        backoff = self._options.retry_backoff
        ahead: _Fetched | None = None
        while not self._stopping.is_set():
            try:
                if self._reload:
                    ahead = None  # read again from the positions loaded now
                    await self._reload_positions()
                current = ahead if ahead is not None else await self._fetch_unless_stopping()
                ahead = None
                if current is None:
                    await self._audit()
                    continue
                applying = asyncio.create_task(self._apply_fetched(current))
                try:
                    ahead = await self._fetch_while(applying)
                finally:
                    # Never leave the apply behind, whatever the fetch did.
                    await asyncio.wait({applying})
                seeked = self._settle(current, applying.result())
                if seeked:
                    # A position found elsewhere on one partition (a switch to
                    # another copy, commits a crashed server took back) may be
                    # elsewhere on every one.
                    self._reload = True
                await self._commit_hint(self._require_consumer())
                backoff = self._options.retry_backoff
            except Exception as e:
                ahead = None
                if self._stopping.is_set():
                    break
                if not is_transient(e, self.projection):
                    raise
                self.stats.retries += 1
                log.warning(
                    "projection %s: transient failure, retrying in %.1fs: %s: %s",
                    self.projection.name,
                    backoff,
                    type(e).__name__,
                    e,
                )
                # Not from where this process thinks it is: the store may have
                # lost commits (and be down still, then this is retried).
                self._reload = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
                backoff = min(backoff * 2, self._options.max_retry_backoff)

    async def _fetch_unless_stopping(self) -> _Fetched | None:
        """The next batch, or None as soon as :meth:`stop` is called.

        stop() waits for the run loop to settle its batch; without this it
        would also wait out a poll of an idle topic (``poll_timeout_ms``) for
        a batch it would never apply (a rebuild stops its projector at once).
        """
        if self._stopping.is_set():
            return None
        fetching = asyncio.ensure_future(self._fetch())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({fetching, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not fetching.done():
                await cancel_and_wait(fetching)
        return None if fetching.cancelled() else fetching.result()

    async def _fetch_while(self, applying: asyncio.Future[Any]) -> _Fetched | None:
        """Everything that arrives while ``applying`` runs, up to ``max_records``.

        The next batch holds what arrived during the whole apply (and what is
        buffered when it ends), not only what a first poll found: a record
        that lands mid-apply goes with the very next batch instead of waiting
        out one more apply. Only a poll is ever cancelled, while it waits and
        before it has taken records from the consumer; decoding what a poll
        took always completes.
        """
        consumer = self._require_consumer()
        out: _Fetched | None = None
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                room = self._options.max_records - (0 if out is None else out.count)
                if room <= 0:
                    break
                last = applying.done()
                raw: Mapping[Any, Sequence[Any]]
                if last:
                    # What is buffered now, without waiting.
                    raw = await consumer.getmany(timeout_ms=0, max_records=room)
                else:
                    polling = asyncio.ensure_future(
                        consumer.getmany(timeout_ms=self._options.poll_timeout_ms, max_records=room)
                    )
                    await asyncio.wait(
                        {polling, applying, stopping}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if not polling.done():
                        await cancel_and_wait(polling)
                    raw = {} if polling.cancelled() else polling.result()
                more = await self._decode(consumer, raw) if raw else None
                more = await self._skipped(consumer, more)
                if more is not None:
                    if out is None:
                        out = more
                    else:
                        out.extend(more)
                if last:
                    break
        finally:
            stopping.cancel()
        return out

    async def step(self, timeout_ms: int | None = None) -> ApplyResult | None:
        """One fetch + decode + apply, not pipelined. Returns None when nothing was fetched."""
        fetched = await self._fetch(timeout_ms)
        if fetched is None:
            return None
        result = await self._apply_fetched(fetched)
        self._settle(fetched, result)
        await self._commit_hint(self._require_consumer())
        return result

    def _partitions_of(self, consumer: Any, topic: str) -> list[int]:
        """The topic's partitions, sorted (what the envelope check places keys among)."""
        known = self._topic_partitions.get(topic)
        if known is None:
            known = sorted(consumer.partitions_for_topic(topic) or ())
            if known:
                self._topic_partitions[topic] = known
        return known

    async def _fetch(self, timeout_ms: int | None = None) -> _Fetched | None:
        """Fetch and decode one batch; dead-letter what does not decode."""
        consumer = self._require_consumer()
        fetched: Mapping[Any, Sequence[Any]] = await consumer.getmany(
            timeout_ms=self._options.poll_timeout_ms if timeout_ms is None else timeout_ms,
            max_records=self._options.max_records,
        )
        out = await self._decode(consumer, fetched) if fetched else None
        out = await self._skipped(consumer, out)
        if out is None:
            await self._commit_hint(consumer)
        return out

    async def _skipped(self, consumer: Any, out: _Fetched | None) -> _Fetched | None:
        """``out`` plus the owned partitions whose consumer position passed offsets
        that hold no record (see the module contract); None when there is neither.

        The consumer's position only passes what its fetches examined, so
        nothing between the next offset to apply and it can be applied.
        """
        for ktp in consumer.assignment():
            high = consumer.highwater(ktp)
            tp = TopicPartition(ktp.topic, ktp.partition)
            start = self._next_fetch.get(tp)
            if high is None or start is None or high <= start:
                continue  # nothing beyond what was handed over
            try:
                position = await consumer.position(ktp)
            except IllegalStateError:
                continue  # revoked meanwhile
            if position > start:
                if out is None:
                    out = _Fetched()
                out.expected.setdefault(tp, start)
                out.next_positions[tp] = self._next_fetch[tp] = position
        return out

    async def _decode(self, consumer: Any, fetched: Mapping[Any, Sequence[Any]]) -> _Fetched | None:
        """Decode polled records; dead-letter what does not decode."""
        fetched_at = time.perf_counter()
        out = _Fetched()
        decoder = self._decoder
        assert decoder is not None
        for ktp, raw in fetched.items():
            tp = TopicPartition(ktp.topic, ktp.partition)
            start = self._next_fetch.get(tp, self._expected.get(tp, 0))
            if raw and raw[0].offset < start:
                # Read again from before the position (a seek raced the fetch);
                # a partition's records come in offset order, so as a rule
                # nothing is below it and the list is taken as it is.
                raw = [r for r in raw if r.offset >= start]
            if not raw:
                continue
            out.expected[tp] = start
            out.next_positions[tp] = self._next_fetch[tp] = raw[-1].offset + 1
            out.count += len(raw)
            partitions = self._partitions_of(consumer, tp.topic)
            topic, partition = tp
            for n, r in enumerate(raw, 1):
                if n % _YIELD_EVERY == 0:
                    # Decoding is CPU work; let the batch being applied meanwhile
                    # send its next statement instead of waiting for all of it.
                    await asyncio.sleep(0)
                value = record_value(r)
                try:
                    event = decoder.decode(value)
                    check_envelope(
                        r, event if r.value is not None else None, partitions, self._streams
                    )
                except DecodeError as e:
                    out.undecodable.append(undecodable(tp.topic, r, e))
                    continue
                # Positional: a named tuple built by keywords costs twice as much.
                source = SourceRecord(
                    topic,
                    partition,
                    r.offset,
                    r.timestamp,
                    r.key,
                    value,
                    tuple(r.headers or ()),
                    event,
                )
                if hooks.installed:
                    hooks.read(source)
                out.records.append(source)
            if timings.installed:
                out.spans.append(
                    timings.Span(
                        topic,
                        partition,
                        raw[0].offset,
                        raw[-1].offset,
                        fetched_at,
                        time.perf_counter(),
                    )
                )
        if not out.next_positions:
            return None
        # Dead letters first: the position may only pass a record once its
        # dead letter is written.
        await self._require_sink().send(out.undecodable)
        self.stats.undecodable += len(out.undecodable)
        return out

    async def _apply_fetched(self, fetched: _Fetched) -> ApplyResult:
        batch = Batch(
            records=fetched.records,
            next_positions=fetched.next_positions,
            expected=fetched.expected,
        )
        started = time.perf_counter()
        try:
            with tracing.applying(f"projector-{self.projection.name}", batch.records):
                result = await self._apply(batch, self._require_sink())
            if timings.installed:
                timings.report(
                    timings.BatchTiming(
                        self.projection.name, tuple(fetched.spans), started, time.perf_counter()
                    )
                )
            return result
        finally:
            HANDLER_SECONDS.labels(self.projection.name, "apply_batch").observe(
                time.perf_counter() - started
            )

    def _settle(self, fetched: _Fetched, result: ApplyResult) -> set[TopicPartition]:
        """Book a batch's result; returns the partitions sought to another position."""
        consumer = self._require_consumer()
        seeked = self._after_apply(consumer, fetched.next_positions, result)
        self.stats.batches += 1
        self.stats.records += fetched.count
        self.stats.last_batch_at = time.monotonic()
        if self._on_batch is not None:
            self._on_batch(self, result)
        return seeked

    async def _apply(self, batch: Batch, sink: DeadLetterSink) -> ApplyResult:
        try:
            return await self.projection.apply(batch, sink)
        except Exception as e:
            if not batch.records or not caused_by_record(e, self.projection):
                raise
            log.warning(
                "projection %s: batch of %d failed (%s: %s); isolating the bad records",
                self.projection.name,
                len(batch.records),
                type(e).__name__,
                e,
            )
        return await self._apply_one_by_one(batch, sink)

    async def _apply_one_by_one(self, batch: Batch, sink: DeadLetterSink) -> ApplyResult:
        """Apply each record alone; dead-letter the ones that fail alone."""
        expected = dict(batch.expected)
        positions: dict[TopicPartition, int] = dict(batch.expected)
        totals = {"applied": 0, "duplicates": 0, "skipped": 0, "rejected": 0}
        by_tp: dict[TopicPartition, list[SourceRecord]] = {}
        for each in batch.records:
            by_tp.setdefault(each.tp, []).append(each)
        for tp, nxt in batch.next_positions.items():
            queue: list[SourceRecord | None] = [*by_tp.get(tp, []), None]
            for record in queue:
                target = nxt if record is None else record.offset + 1
                one = Batch(
                    records=[] if record is None else [record],
                    next_positions={tp: target},
                    expected={tp: expected[tp]},
                )
                try:
                    result = await self.projection.apply(one, sink)
                except Exception as e:
                    if record is None or not caused_by_record(e, self.projection):
                        raise
                    await sink.send(
                        [
                            Rejection.of(
                                record,
                                "apply_failed",
                                f"{type(e).__name__}: {e}",
                                error_class=type(e).__name__,
                            )
                        ]
                    )
                    totals["rejected"] += 1
                    result = await self.projection.apply(
                        Batch(records=[], next_positions={tp: target}, expected={tp: expected[tp]}),
                        sink,
                    )
                stored = result.positions[tp]
                positions[tp] = stored
                totals["applied"] += result.applied
                totals["duplicates"] += result.duplicates
                totals["skipped"] += result.skipped
                totals["rejected"] += result.rejected
                if stored < target:
                    break  # switched under us: the runner seeks back
                expected[tp] = stored
        return ApplyResult(
            positions=positions,
            applied=totals["applied"],
            duplicates=totals["duplicates"],
            skipped=totals["skipped"],
            rejected=totals["rejected"],
        )

    def _after_apply(
        self, consumer: Any, wanted: Mapping[TopicPartition, int], result: ApplyResult
    ) -> set[TopicPartition]:
        self.stats.applied += result.applied
        self.stats.duplicates += result.duplicates
        self.stats.skipped += result.skipped
        self.stats.rejected += result.rejected
        for key, value in result.extra.items():
            self.stats.extra[key] = self.stats.extra.get(key, 0) + value
        owned = self.assigned()
        seeked: set[TopicPartition] = set()
        for tp, position in wanted.items():
            stored = result.positions.get(tp, position)
            if tp not in owned:
                self._expected.pop(tp, None)
                self._next_fetch.pop(tp, None)
                continue
            self._expected[tp] = stored
            self._uncommitted[tp] = stored
            if stored != position:
                log.info(
                    "projection %s: %s/%d stored position is %d, not %d; seeking there",
                    self.projection.name,
                    tp.topic,
                    tp.partition,
                    stored,
                    position,
                )
                consumer.seek(KafkaTopicPartition(tp.topic, tp.partition), stored)
                self._next_fetch[tp] = stored
                seeked.add(tp)
        return seeked

    # -- positions -------------------------------------------------------------

    async def _seek_to_stored(self, assigned: Collection[Any], *, reload: bool = False) -> None:
        """Read each of ``assigned`` on from its stored position.

        - Not ``reload``: from the rebalance listener (counted in
          ``stats.assignments``). ``reload``: the partitions revoked while the
          positions were read are left alone.
        """
        consumer = self._require_consumer()
        tps = [TopicPartition(tp.topic, tp.partition) for tp in assigned]
        if not reload:
            self.stats.assignments += 1
        if not tps:
            return
        stored = await self.projection.load_positions(tps)
        if reload:
            # The assignment may have changed meanwhile: the listener sought
            # what was assigned, and what was revoked is no longer ours.
            still = self.assigned()
            tps = [tp for tp in tps if tp in still]
        self._seek(consumer, tps, stored, "loaded again" if reload else "assigned")

    def _seek(
        self,
        consumer: Any,
        tps: Sequence[TopicPartition],
        stored: Mapping[TopicPartition, int],
        why: str = "assigned",
    ) -> None:
        """Seek ``tps`` to their ``stored`` positions and expect them there."""
        for tp in tps:
            position = stored.get(tp, 0)
            self._expected[tp] = position
            self._next_fetch[tp] = position
            # The new owner's first hint says where the partition is, even
            # before it applies anything (a hint left behind by the previous
            # owner, or none at all, is corrected).
            self._uncommitted[tp] = position
            consumer.seek(KafkaTopicPartition(tp.topic, tp.partition), position)
        log.info(
            "projection %s: %s %s",
            self.projection.name,
            why,
            ", ".join(f"{tp.topic}/{tp.partition}@{stored.get(tp, 0)}" for tp in tps),
        )

    def _forget(self, revoked: Collection[Any]) -> None:
        for tp in revoked:
            key = TopicPartition(tp.topic, tp.partition)
            self._expected.pop(key, None)
            self._next_fetch.pop(key, None)
            self._uncommitted.pop(key, None)

    async def _audit(self) -> None:
        """While idle, at most once per ``audit_interval``: stored positions behind
        or ahead of ours (commits a crashed store took back) mean a reload."""
        now = time.monotonic()
        if now - self._last_audit < self._options.audit_interval:
            return
        self._last_audit = now
        mine = dict(self._expected)
        if not mine:
            return
        stored = await self.projection.load_positions(list(mine))
        owned = self.assigned()
        if any(stored.get(tp, 0) != pos for tp, pos in mine.items() if tp in owned):
            log.warning(
                "projection %s: stored positions differ from the projector's "
                "(commits the store took back?); loading them again",
                self.projection.name,
            )
            self._reload = True

    async def _reload_positions(self) -> None:
        """Load every owned partition's stored position and read on from there.

        Raises what the store raises (the run loop retries it with backoff);
        only once it has succeeded is anything fetched again.
        """
        await self._seek_to_stored(self._require_consumer().assignment(), reload=True)
        self._reload = False

    async def _commit_hint(self, consumer: Any) -> None:
        """Commit stored positions to the group as a lag hint, off the loop's path.

        At most one commit is in flight, at most one started per ``commit_interval``.
        """
        if self._hint_task is not None and not self._hint_task.done():
            return
        if self.group_id is None or not self._uncommitted:
            return
        now = time.monotonic()
        if now - self._last_commit < self._options.commit_interval:
            return
        self._last_commit = now
        owned = {TopicPartition(tp.topic, tp.partition) for tp in consumer.assignment()}
        offsets = {
            KafkaTopicPartition(tp.topic, tp.partition): pos
            for tp, pos in self._uncommitted.items()
            if tp in owned
        }
        self._uncommitted.clear()
        if not offsets:
            return
        self._hint_task = asyncio.ensure_future(self._send_hint(consumer, offsets))

    async def _send_hint(self, consumer: Any, offsets: dict[Any, int]) -> None:
        try:
            await consumer.commit(offsets)
            self.stats.hints += 1
        except (CommitFailedError, IllegalStateError, KafkaError) as e:
            # Only a hint: the stored positions are the truth. Keep the offsets
            # for the next attempt unless a newer position is already waiting.
            for ktp, pos in offsets.items():
                self._uncommitted.setdefault(TopicPartition(ktp.topic, ktp.partition), pos)
            log.debug("projection %s: lag hint not committed: %s", self.projection.name, e)

    async def _wait_for_run_loop(self) -> None:
        """Let run() finish the batch it is applying and book its positions.

        Its apply may already be stored (visible to readers and to lag) while
        the loop still waits for its prefetch; the positions of that batch only
        reach the hint once the loop has settled it, so the consumer must stay.
        """
        done = self._run_done
        if done is None or done.is_set() or asyncio.current_task() is self._run_task:
            return
        try:
            await asyncio.wait_for(done.wait(), timeout=self._options.stop_timeout)
        except TimeoutError:
            log.warning(
                "projection %s: the batch being applied did not settle within %.1fs of stop; "
                "the lag hint may trail the stored positions",
                self.projection.name,
                self._options.stop_timeout,
            )

    async def _last_hint(self, consumer: Any) -> None:
        """On stop, while still a member of the group: commit every owned stored position.

        Explicit offsets (the positions in the store, not the consumer's fetch
        positions, which run ahead), for every partition still owned. aiokafka
        retries a commit while the coordinator is unknown but fails it during
        a rebalance (``IllegalStateError`` while unassigned, ``CommitFailedError``
        for a stale generation): those are retried here with the assignment of
        the moment, until ``stop_timeout``. It must precede ``consumer.stop()``:
        after it the member has left the group, and a commit then waits for a
        coordinator that a closing consumer no longer looks up.
        """
        if self.group_id is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._options.stop_timeout
        # An older hint landing after this one would move the hint back.
        if self._hint_task is not None and not self._hint_task.done():
            await asyncio.wait({self._hint_task}, timeout=max(0.0, deadline - loop.time()))
            if not self._hint_task.done():
                self._hint_task.cancel()
                await asyncio.wait({self._hint_task})
        self._uncommitted.clear()
        backoff = self._options.retry_backoff
        while True:
            offsets = {
                ktp: self._expected[tp]
                for ktp in consumer.assignment()
                if (tp := TopicPartition(ktp.topic, ktp.partition)) in self._expected
            }
            if not offsets:
                # Nothing owned (any more): revoked partitions are hinted by
                # their next owner as soon as it is assigned them.
                return
            error: BaseException | None = None
            remaining = deadline - loop.time()
            if remaining > 0:
                try:
                    await asyncio.wait_for(consumer.commit(offsets), timeout=remaining)
                    return
                except (CommitFailedError, IllegalStateError) as e:
                    error = e  # a rebalance: try again with the new assignment
                except KafkaError as e:
                    if not e.retriable:
                        log.warning(
                            "projection %s: last lag hint not committed: %s",
                            self.projection.name,
                            e,
                        )
                        return
                    error = e
                except TimeoutError as e:
                    error = e
            why = "no time left" if error is None else f"{type(error).__name__}: {error}"
            if loop.time() + backoff >= deadline:
                log.warning(
                    "projection %s: last lag hint not committed within %.1fs (%s); "
                    "it may trail the stored positions",
                    self.projection.name,
                    self._options.stop_timeout,
                    why,
                )
                return
            log.info(
                "projection %s: last lag hint not committed yet (%s); retrying",
                self.projection.name,
                why,
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._options.max_retry_backoff)

    def _require_consumer(self) -> Any:
        if self._consumer is None:
            raise NotStartedError("the projector is not started: use `async with` or start()")
        return self._consumer

    def _require_sink(self) -> DeadLetterSink:
        if self._dead_letters is None:
            raise NotStartedError("the projector is not started: use `async with` or start()")
        return self._dead_letters
