"""The seam between the transcript projection / reader and where transcripts live.

:class:`TranscriptStore` is implemented by Redis
(:class:`~runwire.projections.transcripts.redis_store.RedisTranscriptStore`,
the real one) and by an in-memory twin
(:class:`~runwire.projections.transcripts.inmem.InMemoryTranscriptStore`,
for unit tests); one contract suite runs against both.

Contract of :meth:`TranscriptStore.commit` (the only write of run data):

- **All or nothing**: either every guard holds and every write of the commit
  happens, or nothing changes and the outcome names the first guard that
  failed. Readers never see half a commit.
- **Generation guard**: the commit's slot (``live`` or ``building``) must
  still name the commit's generation; a rebuild that went live (or a reset)
  makes a commit of the old generation fail instead of writing garbage.
- **Position guard**: each partition's stored position must equal the
  position the writer read (compare-and-set); it becomes the new one.
- **Run guards**: ``EXACT`` - the run's last applied offset (-1 when the run
  is unknown) and whether its transcript body exists are what the writer read,
  so the new body was folded from the stored one. ``FILL`` (the miss path) -
  the stored last offset is older than the fill's, or equal with no body: a
  fill never replaces newer data with older.
- A run's meta (partition, first offset, session, first time) is set when the
  run is created and never changed; later writes only move its last offset.
  Creating a run also adds it to its session's runs (scored by first time).
- A body is written whole (:class:`RunBody`: creating a run, a fill) or
  appended to (:class:`BodyAppend`: new committed messages and applied-event
  digests are appended, the open message and open state replaced), so a write
  costs what changed, not the size of the run. Appending is only sound on the
  body the writer folded from, which the ``EXACT`` guard ensures.
- A body write refreshes the transcript TTL (when one is configured). Meta,
  session indexes, positions and deleted sessions never expire.
- **Tenants**: every run, session, deletion, erasure and clear of a commit
  is in one tenant's namespace (``None``: events without a tenant; see
  :mod:`~runwire.projections.transcripts.keys`): a run write's ``tenant``,
  a ``(tenant, id)`` pair for the others. Namespaces never meet: the same
  run or session id in two tenants is two runs or sessions, deleting one
  tenant's session erases nothing of another's. Every read names its tenant
  (``tenant=``, ``None`` by default) and sees only that namespace; the
  positions are the generation's, shared by every tenant.
- **Erasure**: ``Commit.deletions`` names sessions erased by the commit (a
  ``session_deleted`` on the session-events topic). Each is recorded in the
  generation's deleted sessions, and every run of its session index is
  erased, and the index itself removed, in the same atomic step as the
  positions. Erasing a run (those of a deleted session's index, and those
  named by ``Commit.erasures``) removes its meta and body (and its place in
  its session's index) and records it in the generation's erased runs. A run
  write (``EXACT`` or ``FILL``) of an erased run, or whose meta names a
  deleted session, is refused (``Conflict.DELETED``): a writer that computed
  it before the deletion re-reads, and drops the run. So whatever the order
  of a session's deletion and its runs' events, and whichever writer gets in
  first, nothing of a deleted session stays cached.
- **Clears**: ``Commit.clears`` names (session, clear point) pairs: the
  session's ``session_cleared`` at that time (ms since the epoch, the
  event's ``occurred_at`` as the session index records it); the last one
  applied is kept (one session's events are in log order). Its runs that
  began at or before the point are hidden from reads. A clear of a deleted
  session is not recorded, and a deletion drops the session's clear point
  (so the result does not depend on how the two were batched).
- **Endings**: ``Commit.endings`` names sessions that ended
  (``session_ended``); an ending is permanent. An ending of a deleted
  session is not recorded, and a deletion drops it.
- **Session versions**: in the same atomic step, every commit that writes a
  run of a session (meta or body), clears it, ends it, deletes it or erases one of
  its runs gives the session a new version, greater than any it had (at
  least the server's clock in microseconds, so a version lost with a flush
  is never handed out again for other data). A reader holding a session's
  (generation, version) knows nothing it reads has changed while they are
  the same. Versions are not data: :meth:`TranscriptStore.dump` leaves them
  out (a rebuild numbers them differently), clear points are in it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

from runwire.log.records import TopicPartition
from runwire.projections.transcripts.keys import owner_tag


class Slot(StrEnum):
    """Which pointer a writer writes through."""

    LIVE = "live"
    BUILDING = "building"


class Guard(StrEnum):
    EXACT = "x"
    FILL = "f"


@dataclass(frozen=True, slots=True)
class RunMeta:
    """Where a run lies in the log and how far its transcript is applied."""

    partition: int
    first: int
    last: int
    session_id: str | None
    first_ms: int
    owner: str = owner_tag(None, None)
    """:func:`~runwire.projections.transcripts.keys.owner_tag` of the run's first record."""


@dataclass(frozen=True, slots=True)
class RunHead:
    """What the store holds for one run: its meta (None: unknown) and whether
    its transcript body is there (it may have expired)."""

    meta: RunMeta | None
    has_body: bool

    @property
    def last(self) -> int:
        return -1 if self.meta is None else self.meta.last


UNKNOWN = RunHead(meta=None, has_body=False)


@dataclass(frozen=True, slots=True)
class RunBody:
    """A whole stored transcript (see :mod:`~runwire.projections.transcripts.body`).

    ``committed``: the committed messages' JSON joined by commas (no
    brackets), ``count`` of them; ``open``: the open message's JSON or empty;
    ``state``: the open fold state; ``applied``: one ``event_id=digest`` line
    per applied event.
    """

    committed: bytes
    count: int
    open: bytes
    state: bytes
    applied: bytes

    @property
    def messages(self) -> bytes:
        """The messages as one JSON array (committed, then the open one)."""
        return messages_json(self.committed, self.open)


@dataclass(frozen=True, slots=True)
class BodyAppend:
    """What changed in a body: ``committed`` / ``applied`` are appended (same
    forms as in :class:`RunBody`), ``open`` and ``state`` replace theirs."""

    committed: bytes
    count: int
    open: bytes
    state: bytes
    applied: bytes


def messages_json(committed: bytes, open_message: bytes) -> bytes:
    """``[committed..., open]`` as one JSON array."""
    if committed and open_message:
        return b"[" + committed + b"," + open_message + b"]"
    return b"[" + (committed or open_message) + b"]"


@dataclass(frozen=True, slots=True)
class RunWrite:
    """One run's part of a commit. ``body`` None moves only the last offset
    (the transcript has expired: the miss path rebuilds it from the log)."""

    run_id: str
    guard: Guard
    expected_last: int
    expected_body: bool
    meta: RunMeta
    body: RunBody | BodyAppend | None
    tenant: str | None = None
    """The namespace the run is in (its records' tenant)."""


Scoped = tuple[str | None, str]
"""An id in one tenant's namespace: ``(tenant, id)``, tenant None for none."""


@dataclass(frozen=True, slots=True)
class PositionWrite:
    tp: TopicPartition
    expected: int
    position: int


@dataclass(frozen=True, slots=True)
class Commit:
    """One atomic write; ``deletions``: the sessions it deletes, ``erasures``: more
    runs it erases, each with its tenant (see the module contract)."""

    slot: Slot
    generation: int
    positions: Sequence[PositionWrite]
    runs: Sequence[RunWrite]
    deletions: Sequence[Scoped] = ()
    erasures: Sequence[Scoped] = ()
    clears: Sequence[tuple[str | None, str, int]] = ()
    """(tenant, session id, clear point in ms), in log order."""
    endings: Sequence[Scoped] = ()
    """The sessions that ended, each with its tenant."""


class Snapshot(NamedTuple):
    """What a batch is folded from (:meth:`TranscriptStore.snapshot`).

    ``deleted``: the deleted sessions among those asked about and those of
    the runs' meta; ``erased``: the erased runs among those asked about.
    """

    positions: dict[TopicPartition, int]
    heads: dict[str, RunHead]
    deleted: set[str]
    erased: set[str]


class SessionState(NamedTuple):
    """What a store holds about a session besides its runs."""

    version: int
    """0 when no commit touched the session in this generation."""
    cleared_ms: int | None
    deleted: bool
    ended: bool = False


class Conflict(StrEnum):
    """Which guard a refused commit broke."""

    NONE = ""
    GENERATION = "generation"
    POSITION = "position"
    RUN = "run"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class CommitOutcome:
    ok: bool
    conflict: str = ""
    kind: Conflict = Conflict.NONE


COMMITTED = CommitOutcome(ok=True)


class TranscriptStore(Protocol):
    """Generations of transcripts with guarded commits; see the module contract."""

    async def generation(self, slot: Slot) -> int | None:
        """The generation ``slot`` names: ``live`` is 0 until a rebuild went live;
        ``building`` is None when no rebuild is under way."""
        ...

    async def positions(
        self, generation: int, partitions: Collection[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        """Stored positions (0 when none) of ``partitions``, or every stored one."""
        ...

    async def heads(
        self, generation: int, run_ids: Collection[str], *, tenant: str | None = None
    ) -> dict[str, RunHead]:
        """The head of every run asked for (``UNKNOWN`` for runs never seen)."""
        ...

    async def snapshot(
        self,
        generation: int,
        partitions: Collection[TopicPartition],
        run_ids: Collection[str],
        session_ids: Collection[str] = (),
        *,
        tenant: str | None = None,
    ) -> Snapshot:
        """``positions(partitions)``, ``heads(run_ids)``, which of ``session_ids``
        (and of the runs' sessions) are deleted and which runs are erased, read
        together (one round trip); runs and sessions of ``tenant``."""
        ...

    async def deleted(
        self, generation: int, session_ids: Collection[str], *, tenant: str | None = None
    ) -> set[str]:
        """The sessions among ``session_ids`` that are erased in ``generation``."""
        ...

    async def session_state(
        self, generation: int, session_id: str, *, tenant: str | None = None
    ) -> SessionState:
        """The session's version, clear point and whether it is deleted."""
        ...

    async def bodies(
        self, generation: int, run_ids: Collection[str], *, tenant: str | None = None
    ) -> dict[str, RunBody]:
        """The bodies present among ``run_ids`` (expired or unknown ones are left out)."""
        ...

    async def messages(
        self, generation: int, run_ids: Collection[str], *, tenant: str | None = None
    ) -> dict[str, bytes]:
        """The messages JSON of each run present (misses are left out)."""
        ...

    async def session_runs(
        self, generation: int, session_id: str, *, tenant: str | None = None
    ) -> list[str]:
        """Run ids of a session, oldest first."""
        ...

    async def commit(self, commit: Commit) -> CommitOutcome:
        """Apply ``commit`` if every guard holds; see the module contract."""
        ...

    async def begin_generation(self, *, restart: bool = False) -> tuple[int, int | None]:
        """The building generation, created unless one exists (or ``restart``).

        Returns ``(building, dropped)``: ``dropped`` is a previous building
        generation the caller must drop (``restart``), else None.
        """
        ...

    async def switch(self, generation: int) -> int | None:
        """Make the building ``generation`` live if its positions are at least
        the live ones, atomically; returns the old live generation (to drop),
        or None when nothing changed (behind, or not the building one)."""
        ...

    async def abandon(self, generation: int) -> None:
        """Stop naming ``generation`` as the building one, if it is (atomic)."""
        ...

    async def drop_generation(self, generation: int) -> None:
        """Delete every key of ``generation`` (idempotent)."""
        ...

    async def dump(self, generation: int) -> dict[str, Any]:
        """Every key of ``generation`` as plain data, by key name relative to it
        (a tenant's keys begin ``t:<tenant>:``; TTLs left out): what a checksum
        and a test diff compare."""
        ...


def checksum(dump: Mapping[str, Any]) -> str:
    """A stable digest of a :meth:`TranscriptStore.dump`."""
    text = json.dumps(dump, sort_keys=True, separators=(",", ":"), default=_bytes_text)
    return hashlib.sha256(text.encode()).hexdigest()


def _bytes_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    raise TypeError(f"cannot digest {type(value).__name__}")
