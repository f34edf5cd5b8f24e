"""Dead letters: records a consumer could not decode or apply, with why and from where.

A dead letter is the original record (same key, same value bytes, original
headers kept) written to the dead-letter topic with extra headers naming its
source topic / partition / offset, the consumer, the error class, the error
message and a short reason code. Consumers write a dead letter *before* they
store a position past the record, so nothing is lost; a crash in between can
write the same dead letter twice (``list_dead_letters`` shows both, each
names its source position).

``redrive`` re-publishes dead letters to their source topic (after a fix),
remembering how far it got in its own consumer group.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition as KafkaTopicPartition

from runwire.errors import DecodeError
from runwire.projections.runtime.protocol import Rejection
from runwire.settings import Settings

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
REDRIVEN_FROM = "runwire-redriven-from"

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
        }


class DeadLetterProducer:
    """The production :class:`DeadLetterSink`: writes to the dead-letter topic.

    ``send`` returns once every record is acknowledged by all in-sync
    replicas (idempotent producer), so a caller may then store a position
    past the rejected records.
    """

    def __init__(self, settings: Settings, consumer: str) -> None:
        self._settings = settings
        self._consumer = consumer
        self._producer: Any = None
        self._sent = 0

    @property
    def sent(self) -> int:
        """How many dead letters this sink has written."""
        return self._sent

    async def start(self) -> None:
        if self._producer is not None:
            return
        producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            client_id=f"{self._settings.client_id}-dlq-{self._consumer}",
            acks="all",
            enable_idempotence=True,
            linger_ms=0,
        )
        await producer.start()
        self._producer = producer

    async def stop(self) -> None:
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
        if not rejections:
            return
        if self._producer is None:
            raise RuntimeError("DeadLetterProducer is not started: use `async with` or start()")
        futures = [
            await self._producer.send(
                self._settings.dead_letters,
                value=r.value,
                key=r.key,
                headers=dead_letter_headers(r, self._consumer),
            )
            for r in rejections
        ]
        await asyncio.gather(*futures)
        self._sent += len(rejections)
        for r in rejections:
            log.warning(
                "dead-lettered %s/%d@%d for %s: %s (%s)",
                r.topic,
                r.partition,
                r.offset,
                self._consumer,
                r.reason,
                r.message,
            )


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
    kafka = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id=f"{settings.client_id}-dlq-list",
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
    kafka = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id=f"{settings.client_id}-dlq-redrive",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        client_id=f"{settings.client_id}-dlq-redrive",
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
