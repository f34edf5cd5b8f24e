"""Dead letters: records a consumer could not decode or apply, with why and from where.

A dead letter is the original record (same key, same value bytes, original
headers kept) written to the dead-letter topic with extra headers naming its
source topic / partition / offset, the consumer, the error class, the error
message and a short reason code. Consumers write a dead letter *before* they
store a position past the record, so nothing is lost; a crash in between can
write the same dead letter twice (``list_dead_letters`` shows both, each
names its source position).

A dead letter is always writable. The producer compresses, and a record
that would not fit the dead-letter topic (its ``max.message.bytes``, read
from the broker when the producer starts; 1,000,000 bytes when it cannot be
read) is written as a *truncated copy*: the leading bytes of the value that
fit, with headers giving the original's length and the SHA-256 of the whole
value (its coordinates are in the headers already). If the key or the
original headers alone are too big, the original headers are dropped and the
key is cut too (with its own digest). Should the broker still refuse a dead
letter as too large, it is cut to half the size and sent again, down to
16 KiB; below that :class:`DeadLetterError` (not retriable) stops the consumer
loudly instead of stalling it for ever.

``redrive`` re-publishes dead letters to their source topic (after a fix),
remembering how far it got in its own consumer group. A truncated copy is
never redriven (it is not the original): it is counted as skipped, and the
original is found at its source coordinates.

A record of an erased session (reason ``erased``: its data key destroyed,
:mod:`runwire.contract.sealing`) is never a dead letter: ``send`` skips it
and counts it in ``erased``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import TopicPartition as KafkaTopicPartition

from runwire.contract.sealing.errors import ERASED
from runwire.errors import DecodeError, NotStartedError, RunwireError
from runwire.log import clients
from runwire.projections.runtime.protocol import Rejection
from runwire.settings import Settings
from runwire.telemetry.metrics import DEAD_LETTERS

log = logging.getLogger(__name__)

HEADER_PREFIX = "runwire-dlq-"
SOURCE_TOPIC = HEADER_PREFIX + "source-topic"
SOURCE_PARTITION = HEADER_PREFIX + "source-partition"
SOURCE_OFFSET = HEADER_PREFIX + "source-offset"
CONSUMER = HEADER_PREFIX + "consumer"
ERROR_CLASS = HEADER_PREFIX + "error-class"
ERROR_MESSAGE = HEADER_PREFIX + "error-message"
REASON = HEADER_PREFIX + "reason"
FAILED_AT = HEADER_PREFIX + "failed-at"
TRUNCATED_FROM = HEADER_PREFIX + "truncated-from"
"""On a truncated copy: the length in bytes of the original value."""
VALUE_SHA256 = HEADER_PREFIX + "value-sha256"
"""On a truncated copy: hex SHA-256 of the whole original value."""
KEY_SHA256 = HEADER_PREFIX + "key-sha256"
"""On a copy whose key was cut too: hex SHA-256 of the whole original key."""
REDRIVEN_FROM = "runwire-redriven-from"

FALLBACK_MAX_MESSAGE_BYTES = 1_000_000
"""Used when the dead-letter topic's limit cannot be read: below Kafka's default."""
_BATCH_OVERHEAD = 1024
"""Record-batch header and the compression's worst-case growth, kept free."""
_MIN_BUDGET = 16_384
_MAX_KEY_BYTES = 1024

# A message long enough to explain, short enough to never push the record
# over the topic's size limit.
_MAX_MESSAGE_CHARS = 2000


def record_value(record: Any) -> bytes:
    """A consumed record's value; ``b""`` when it has none (a tombstone then reads
    as ``truncated: empty value``, the same reason in every consumer)."""
    value: bytes | None = record.value
    return value if value is not None else b""


def undecodable(topic: str, record: Any, error: DecodeError) -> Rejection:
    """The rejection of a consumed record (aiokafka's ``ConsumerRecord``) that did
    not decode: every consumer builds it here, so each dead-letters it alike."""
    return Rejection(
        topic=topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record_value(record),
        headers=tuple(record.headers or ()),
        reason=error.reason,
        error_class=type(error).__name__,
        message=str(error),
    )


class DeadLetterError(RunwireError):
    """A dead letter could not be written even as a small truncated copy."""


Headers = list[tuple[str, bytes]]


def record_size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """Bytes of one record in a batch, uncompressed (what the producer checks)."""
    size: int = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
    return size


def fit_dead_letter(
    key: bytes | None, value: bytes, headers: Headers, budget: int
) -> tuple[bytes | None, bytes, Headers]:
    """The dead letter as it is when it fits in ``budget`` bytes, else its truncated copy.

    The copy keeps the leading bytes of the value that fit and adds
    :data:`TRUNCATED_FROM` and :data:`VALUE_SHA256`; when the key and headers
    alone leave no room, the original headers are dropped and the key is cut
    to :data:`_MAX_KEY_BYTES` (with :data:`KEY_SHA256`).
    """
    if record_size(key, value, headers) <= budget:
        return key, value, headers
    headers = [
        *headers,
        (TRUNCATED_FROM, str(len(value)).encode()),
        (VALUE_SHA256, hashlib.sha256(value).hexdigest().encode()),
    ]
    # The varints of the value's length can grow by a few bytes: keep 8 spare.
    room = budget - record_size(key, b"", headers) - 8
    if room < 0:
        headers = [(k, v) for k, v in headers if k.startswith(HEADER_PREFIX)]
        if key is not None and len(key) > _MAX_KEY_BYTES:
            headers.append((KEY_SHA256, hashlib.sha256(key).hexdigest().encode()))
            key = key[:_MAX_KEY_BYTES]
        room = budget - record_size(key, b"", headers) - 8
    return key, value[: max(0, room)], headers


async def dead_letter_limit(settings: Settings) -> int:
    """``max.message.bytes`` of the dead-letter topic (the broker's
    ``message.max.bytes`` unless the topic overrides it), asked of the broker;
    :data:`FALLBACK_MAX_MESSAGE_BYTES` when it cannot be read."""
    admin = clients.admin(
        settings,
        "dlq-limit",
        request_timeout_ms=10_000,
    )
    try:
        await admin.start()
        resource = ConfigResource(
            ConfigResourceType.TOPIC, settings.dead_letters, {"max.message.bytes": None}
        )
        for response in await admin.describe_configs([resource]):
            for found in response.to_object()["resources"]:
                for entry in found["config_entries"]:
                    if entry["config_names"] == "max.message.bytes" and entry["config_value"]:
                        return int(entry["config_value"])
    except (KafkaError, OSError, ValueError) as e:
        log.warning(
            "cannot read max.message.bytes of %s (%s); dead letters are kept under %d bytes",
            settings.dead_letters,
            e,
            FALLBACK_MAX_MESSAGE_BYTES,
        )
    finally:
        await admin.close()
    return FALLBACK_MAX_MESSAGE_BYTES


def dead_letter_headers(rejection: Rejection, consumer: str) -> list[tuple[str, bytes]]:
    """The original headers (minus earlier dead-letter headers) plus ours."""
    kept = [(k, v) for k, v in rejection.headers if not k.startswith(HEADER_PREFIX)]
    ours = {
        SOURCE_TOPIC: rejection.topic,
        SOURCE_PARTITION: str(rejection.partition),
        SOURCE_OFFSET: str(rejection.offset),
        CONSUMER: consumer,
        ERROR_CLASS: rejection.error_class,
        ERROR_MESSAGE: rejection.message[:_MAX_MESSAGE_CHARS],
        REASON: rejection.reason,
        FAILED_AT: datetime.now(UTC).isoformat(),
    }
    return kept + [(k, v.encode()) for k, v in ours.items()]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of the dead-letter topic, its headers parsed."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    source_topic: str
    source_partition: int
    source_offset: int
    consumer: str
    error_class: str
    message: str
    reason: str
    failed_at: str
    original_headers: tuple[tuple[str, bytes], ...]
    truncated_from: int | None = None
    """Set on a truncated copy: the length of the original value."""
    sha256: str | None = None
    """Set on a truncated copy: hex SHA-256 of the original value."""

    @classmethod
    def from_record(cls, record: Any) -> DeadLetter:
        headers: list[tuple[str, bytes]] = list(record.headers or ())
        ours = {k: v.decode(errors="replace") for k, v in headers if k.startswith(HEADER_PREFIX)}
        return cls(
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp,
            key=record.key,
            value=record.value or b"",
            source_topic=ours.get(SOURCE_TOPIC, ""),
            source_partition=int(ours.get(SOURCE_PARTITION, "-1")),
            source_offset=int(ours.get(SOURCE_OFFSET, "-1")),
            consumer=ours.get(CONSUMER, ""),
            error_class=ours.get(ERROR_CLASS, ""),
            message=ours.get(ERROR_MESSAGE, ""),
            reason=ours.get(REASON, ""),
            failed_at=ours.get(FAILED_AT, ""),
            original_headers=tuple((k, v) for k, v in headers if not k.startswith(HEADER_PREFIX)),
            truncated_from=int(ours[TRUNCATED_FROM]) if TRUNCATED_FROM in ours else None,
            sha256=ours.get(VALUE_SHA256),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "offset": self.offset,
            "timestamp_ms": self.timestamp_ms,
            "key": self.key.decode(errors="replace") if self.key is not None else None,
            "value_bytes": len(self.value),
            "source_topic": self.source_topic,
            "source_partition": self.source_partition,
            "source_offset": self.source_offset,
            "consumer": self.consumer,
            "error_class": self.error_class,
            "message": self.message,
            "reason": self.reason,
            "failed_at": self.failed_at,
            "truncated_from": self.truncated_from,
            "sha256": self.sha256,
        }


class DeadLetterProducer:
    """The production :class:`DeadLetterSink`: writes to the dead-letter topic.

    ``send`` returns once every record is acknowledged by all in-sync
    replicas (idempotent producer), so a caller may then store a position
    past the rejected records. Records are compressed and sized to the
    topic's limit (see the module docstring); ``max_message_bytes`` overrides
    the limit read from the broker.

    ``start_on_send``: ``send`` starts the producer itself the first time it
    has a dead letter to write, so a sink that writes none (a rebuild of a
    clean log) never connects; one that cannot start fails that ``send``,
    retriable as a send is. Not after :meth:`stop`.
    """

    def __init__(
        self,
        settings: Settings,
        consumer: str,
        *,
        max_message_bytes: int | None = None,
        start_on_send: bool = False,
    ) -> None:
        self._settings = settings
        self._consumer = consumer
        self._producer: Any = None
        self._start_on_send = start_on_send
        self._stopped = False
        # Two sends may find the producer missing at once (a decode and an apply).
        self._starting = asyncio.Lock()
        self._sent = 0
        self.erased = 0
        """Rejections skipped because their session is erased (never dead-lettered)."""
        self._limit = max_message_bytes
        self._budget = 0

    @property
    def budget(self) -> int:
        """The largest dead letter (uncompressed record bytes) this sink writes whole."""
        return self._budget

    @property
    def sent(self) -> int:
        """How many dead letters this sink has written."""
        return self._sent

    async def start(self) -> None:
        self._stopped = False
        async with self._starting:
            if self._producer is None:
                await self._start()

    async def _start(self) -> None:
        limit = self._limit or await dead_letter_limit(self._settings)
        self._budget = max(_MIN_BUDGET, limit - _BATCH_OVERHEAD)
        producer = clients.producer(
            self._settings,
            f"dlq-{self._consumer}",
            linger_ms=0,
            # gzip needs no extra library; a dead letter's size matters more than speed.
            compression_type="gzip",
            max_request_size=self._budget + _BATCH_OVERHEAD,
        )
        await producer.start()
        self._producer = producer

    async def stop(self) -> None:
        self._stopped = True
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def __aenter__(self) -> DeadLetterProducer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def send(self, rejections: Sequence[Rejection]) -> None:
        # A record of an erased session (its key destroyed) is not a fault: it
        # is skipped here, the one path every consumer's rejections take.
        erased = [r for r in rejections if r.reason == ERASED]
        if erased:
            rejections = [r for r in rejections if r.reason != ERASED]
            self.erased += len(erased)
            log.debug("%s: skipped %d record(s) of erased sessions", self._consumer, len(erased))
        if not rejections:
            return
        if self._producer is None:
            if not self._start_on_send or self._stopped:
                raise NotStartedError(
                    "DeadLetterProducer is not started: use `async with` or start()"
                )
            await self.start()
        pending = list(rejections)
        while pending:
            futures = [await self._send_one(r) for r in pending]
            results = await asyncio.gather(*futures, return_exceptions=True)
            refused = [
                r
                for r, result in zip(pending, results, strict=True)
                if isinstance(result, MessageSizeTooLargeError)
            ]
            for result in results:
                if isinstance(result, BaseException) and not isinstance(
                    result, MessageSizeTooLargeError
                ):
                    raise result
            if refused:
                # The broker's limit is below what was read (changed since?): cut harder.
                if self._budget <= _MIN_BUDGET:
                    first = refused[0]
                    raise DeadLetterError(
                        f"the dead letter of {first.topic}/{first.partition}@{first.offset} "
                        f"is refused as too large by {self._settings.dead_letters} "
                        f"even cut to {self._budget} bytes"
                    )
                self._budget = max(_MIN_BUDGET, self._budget // 2)
                log.warning(
                    "%s refused %d dead letter(s) as too large; cutting them to %d bytes",
                    self._settings.dead_letters,
                    len(refused),
                    self._budget,
                )
            pending = refused
        self._sent += len(rejections)
        for r in rejections:
            DEAD_LETTERS.labels(self._consumer, r.reason).inc()
            log.warning(
                "dead-lettered %s/%d@%d for %s: %s (%s)",
                r.topic,
                r.partition,
                r.offset,
                self._consumer,
                r.reason,
                r.message[:_MAX_MESSAGE_CHARS],
            )

    async def _send_one(self, rejection: Rejection) -> asyncio.Future[Any]:
        key, value, headers = fit_dead_letter(
            rejection.key,
            rejection.value,
            dead_letter_headers(rejection, self._consumer),
            self._budget,
        )
        if len(value) < len(rejection.value):
            log.warning(
                "the dead letter of %s/%d@%d is a truncated copy: %d of %d bytes",
                rejection.topic,
                rejection.partition,
                rejection.offset,
                len(value),
                len(rejection.value),
            )
        future: asyncio.Future[Any] = await self._producer.send(
            self._settings.dead_letters, value=value, key=key, headers=headers
        )
        return future


async def _dead_letter_partitions(consumer: Any, topic: str) -> list[KafkaTopicPartition]:
    partitions = consumer.partitions_for_topic(topic)
    if partitions is None:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
    return [KafkaTopicPartition(topic, p) for p in sorted(partitions)]


async def list_dead_letters(
    settings: Settings,
    *,
    consumer: str | None = None,
    reason: str | None = None,
    limit: int | None = None,
) -> list[DeadLetter]:
    """Every dead letter currently in the topic (oldest first per partition), filtered."""
    found: list[DeadLetter] = []
    kafka = clients.consumer(
        settings,
        "dlq-list",
        auto_offset_reset="earliest",
    )
    await kafka.start()
    try:
        tps = await _dead_letter_partitions(kafka, settings.dead_letters)
        if not tps:
            return found
        kafka.assign(tps)
        await kafka.seek_to_beginning(*tps)
        ends = await kafka.end_offsets(tps)
        await _read_until(kafka, ends, lambda rec: found.append(DeadLetter.from_record(rec)))
    finally:
        await kafka.stop()
    out = [
        d
        for d in found
        if (consumer is None or d.consumer == consumer) and (reason is None or d.reason == reason)
    ]
    return out[:limit] if limit is not None else out


async def _read_until(kafka: Any, ends: dict[Any, int], handle: Callable[[Any], None]) -> None:
    """Read the assigned partitions up to ``ends`` (exclusive), calling ``handle`` per record."""
    remaining = {tp: end for tp, end in ends.items() if await kafka.position(tp) < end}
    while remaining:
        fetched = await kafka.getmany(*remaining, timeout_ms=1000, max_records=1000)
        for tp, records in fetched.items():
            for rec in records:
                if rec.offset < ends[tp]:
                    handle(rec)
        for tp in list(remaining):
            if await kafka.position(tp) >= remaining[tp]:
                del remaining[tp]


@dataclass(frozen=True, slots=True)
class RedriveReport:
    scanned: int
    redriven: int
    skipped: int
    dry_run: bool


async def redrive(
    settings: Settings,
    *,
    consumer: str | None = None,
    reason: str | None = None,
    from_start: bool = False,
    dry_run: bool = False,
) -> RedriveReport:
    """Re-publish dead letters to their source topics with their original key and headers.

    Progress is kept in the consumer group ``<prefix>runwire-dlq-redrive`` so a
    second redrive only sees dead letters written since (``from_start``
    rescans everything). Records filtered out by ``consumer`` / ``reason``
    are passed over for good. Projections drop re-published events they have
    already applied (same event_id), so redriving to every consumer is safe.
    """
    group = f"{settings.topic_prefix}runwire-dlq-redrive"
    kafka = clients.consumer(
        settings,
        "dlq-redrive",
        group_id=group,
        auto_offset_reset="earliest",
    )
    producer = clients.producer(
        settings,
        "dlq-redrive",
    )
    await kafka.start()
    await producer.start()
    scanned = redriven = skipped = 0
    try:
        tps = await _dead_letter_partitions(kafka, settings.dead_letters)
        if not tps:
            return RedriveReport(0, 0, 0, dry_run)
        kafka.assign(tps)
        if from_start:
            await kafka.seek_to_beginning(*tps)
        ends = await kafka.end_offsets(tps)
        letters: list[DeadLetter] = []
        await _read_until(kafka, ends, lambda rec: letters.append(DeadLetter.from_record(rec)))
        futures = []
        for letter in letters:
            scanned += 1
            if (consumer is not None and letter.consumer != consumer) or (
                reason is not None and letter.reason != reason
            ):
                skipped += 1
                continue
            if letter.truncated_from is not None:
                log.warning(
                    "not redriving dead letter %d@%d: a truncated copy of %s/%d@%d "
                    "(%d bytes, sha256 %s)",
                    letter.partition,
                    letter.offset,
                    letter.source_topic,
                    letter.source_partition,
                    letter.source_offset,
                    letter.truncated_from,
                    letter.sha256,
                )
                skipped += 1
                continue
            redriven += 1
            if dry_run:
                continue
            headers = [
                *letter.original_headers,
                (REDRIVEN_FROM, f"{letter.partition}@{letter.offset}".encode()),
            ]
            futures.append(
                await producer.send(
                    letter.source_topic, value=letter.value, key=letter.key, headers=headers
                )
            )
        await asyncio.gather(*futures)
        if not dry_run:
            await kafka.commit(dict(ends))
    finally:
        await producer.stop()
        await kafka.stop()
    return RedriveReport(scanned=scanned, redriven=redriven, skipped=skipped, dry_run=dry_run)
