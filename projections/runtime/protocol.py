"""The seam between the projector runtime and every read model.

A *projection* folds one or more topics into a store (Postgres tables, Redis
keys). The runtime (:class:`runwire.projections.runtime.consumer.Projector`)
owns Kafka: it joins the projection's consumer group, seeks each assigned
partition to the position the projection stored, fetches batches, decodes
them and dead-letters what does not decode. The projection owns its store:
it applies a batch and stores the positions it reached in the same atomic
write, so a crash at any instant leaves rows and positions consistent.

Contract of :meth:`Projection.apply` (kept by every implementation; the
runtime's correctness rests on it):

- **Atomic**: the changes of a batch and the new partition positions become
  visible together or not at all.
- **Positions only move forward**: a partition's stored position becomes
  ``max(stored, batch.next_positions[tp])``. A position is the offset of the
  *next* record to read (Kafka's convention), so 0 means "nothing applied".
- **Below the stored position means already applied**: skip those records
  (another instance may have applied them during a rebalance).
- **A stored position below** ``batch.expected[tp]`` means the store was
  switched or reset under the runner (a rebuild went live): apply nothing of
  that partition, leave its position, report the stored one; the runner
  seeks back to it.
- **Duplicates change nothing**: an event whose ``event_id`` was already
  applied (re-published at a later offset) only moves the position.
- **Unappliable records are dead-lettered, never retried forever**: a record
  that decodes but cannot be applied is left out, handed to
  ``dead_letters.send`` *before* the write becomes durable, and the position
  moves past it.
- Returns the positions stored after the write; the runner seeks every
  partition whose stored position differs from where it would read next.

The contract suite (tests/contract/projections.py) checks these
rules against every implementation.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from runwire.errors import RunwireError
from runwire.log.records import SourceRecord, TopicPartition

if TYPE_CHECKING:
    pass


class Fault(StrEnum):
    """What a failed apply means, as the projection's store judges its own errors.

    A projection may define ``fault_of(error) -> Fault | None`` (None: not its
    store's error); the runtime asks it before its own rules, so no driver's
    exception classes are listed outside the adapter that uses the driver.
    """

    TRANSIENT = "transient"
    """The store cannot serve now (or is misconfigured): retry from the stored positions."""
    RECORD = "record"
    """A value the store refuses: a record of the batch may be at fault."""
    FINAL = "final"
    """Every record would fail alike (a broken statement): stop the projector."""


class ProjectionError(RunwireError):
    """The projection cannot go on (its copy was dropped, its store is misconfigured).

    Neither retried nor dead-lettered: the projector stops with it. Raise it
    from ``apply`` / ``load_positions`` for failures that no record caused
    and no retry will fix.
    """


@dataclass(frozen=True, slots=True)
class Batch:
    """What the runner hands to :meth:`Projection.apply` after one fetch.

    ``records`` holds the decoded records, each partition's in offset order.
    ``next_positions`` has an entry for every partition fetched, including
    partitions whose records were all dead-lettered: the position to store
    (last fetched offset + 1). ``expected`` is, for the same partitions, the
    position the runner believes is stored (where it started reading).
    """

    records: Sequence[SourceRecord]
    next_positions: Mapping[TopicPartition, int]
    expected: Mapping[TopicPartition, int]


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record that cannot go into a projection, and why.

    ``reason`` is a short stable code (``unknown_tool_use``, ``bad_magic``,
    ``apply_failed`` ...); ``error_class`` and ``message`` describe the error.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    reason: str
    error_class: str
    message: str

    @classmethod
    def of(
        cls, record: SourceRecord, reason: str, message: str, error_class: str = "Rejected"
    ) -> Rejection:
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=record.headers,
            reason=reason,
            error_class=error_class,
            message=message,
        )


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What a projection reports after applying a batch.

    ``positions`` has the stored position of every partition of the batch.
    The counters are for progress reports and tests.
    """

    positions: Mapping[TopicPartition, int]
    applied: int = 0
    duplicates: int = 0
    skipped: int = 0
    rejected: int = 0
    extra: Mapping[str, int] = field(default_factory=dict)


class DeadLetterSink(Protocol):
    """Where rejected records go (the dead-letter topic in production)."""

    async def send(self, rejections: Sequence[Rejection]) -> None:
        """Durably record every rejection; return only once they are written."""
        ...


@runtime_checkable
class Projection(Protocol):
    """A read model the runtime can drive. See the module docstring for the contract."""

    @property
    def name(self) -> str:
        """Stable name: the consumer group, dead-letter header and CLI name derive from it."""
        ...

    @property
    def topics(self) -> tuple[str, ...]:
        """The full topic names (prefix included) this projection folds."""
        ...

    async def load_positions(
        self, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Stored position of every partition asked for (0 when nothing is stored)."""
        ...

    async def apply(self, batch: Batch, dead_letters: DeadLetterSink) -> ApplyResult:
        """Apply a batch and store its positions atomically (see the module contract)."""
        ...


class Rebuild(Protocol):
    """A fresh copy of a projection being built from offset 0 beside the live one."""

    @property
    def generation(self) -> int:
        """The copy's generation number (live copies have lower ones)."""
        ...

    @property
    def projection(self) -> Projection:
        """A projection that writes into the copy and loads the copy's positions."""
        ...

    async def try_switch(self) -> bool:
        """Make the copy live if it is caught up; drop the old copy.

        Caught up means: for every partition, the copy's stored position is at
        least the live copy's. The switch is atomic for readers. Returns False
        (and changes nothing) when the copy is behind: apply more and retry.
        """
        ...

    async def discard(self) -> None:
        """Drop the copy without switching (idempotent)."""
        ...


@runtime_checkable
class Rebuildable(Projection, Protocol):
    """A projection that can build a fresh copy of itself while the live one serves."""

    async def begin_rebuild(self, *, restart: bool = False) -> Rebuild:
        """Start (or, unless ``restart``, resume) building a new copy."""
        ...
