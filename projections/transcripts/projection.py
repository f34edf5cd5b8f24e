"""The transcript-cache projection: run events -> per-run transcripts in Redis.

How it stays exactly-once in effect (under restarts, rebalances, replays and
the miss path writing beside it):

- **Python folds, Redis guards.** For each batch the projection reads the
  partition positions and the head of every run in the batch (last applied
  offset, body present) in one ``snapshot.lua`` call, folds the new records
  with the ledger's own :class:`~runwire.transcript.ledger.TranscriptBuilder`
  from the stored state, and hands what changed (:mod:`.body`) to one
  ``apply.lua`` call that writes runs and positions only if nothing it was
  computed from has changed (compare-and-set on the generation, on each
  partition position and on each run's last offset), all in one atomic step. The fold stays in one place (the ledger)
  instead of a second implementation in Lua that could drift from
  ``build_messages_from_events``; the script stays small and obviously
  atomic.
- A crash before the script leaves nothing; after it, everything including
  the positions. On restart the runner seeks to the stored positions.
- Two writers (two instances during a rebalance, or a reader filling a miss)
  can both compute from the same state; the first script wins, the second
  finds its guard broken, writes nothing, re-reads and folds again. A
  run's last offset is its version: within a partition offsets only grow.
- Re-published events (same event_id at a later offset) are dropped by the
  builder, which remembers every applied id in the stored state.

Erasure, clears and ends: the projection also reads the session-events topic, for
``session_deleted``, ``session_cleared`` and ``session_ended`` only (:func:`deletion`,
:func:`clearing`, :func:`ending`; the rest of that topic is the session index's). An
end is recorded in the generation so that a writer refuses an ended session
from the cache alone. A clear
goes into the same ``apply.lua`` call as the batch's positions: the
session's clear point (the event's time, as the session index records it)
is kept in the generation, so a session read needs nothing but the cache;
a rebuild reads the clears from offset 0 like everything else. A deletion goes into the same ``apply.lua`` call as the
batch's positions: it records the session as deleted in the generation and
erases the runs of its session index (removed, and recorded as erased). A
run belongs to its stored session, else to the sessions its events name
(:func:`_sessions`). The events of an erased run, and of a run of a deleted
session (which is erased then, even if nothing of it was cached), are
dropped: skipped, neither applied nor dead-lettered - also those of a
session deleted in the same batch, whatever their order in it, and those
that name no session. The two topics interleave in any order across
partitions: a run written before the deletion is erased by it; one written
after finds the session deleted (the snapshot says so, and the script
refuses a run write of a deleted session or an erased run, so a writer that
read before a concurrent deletion reads again). A rebuild reads both topics
from offset 0 into its own generation, so it honours every deletion too.

Tenants: a record's run and session are those of its event's ``tenant``
(:mod:`.keys`: each tenant's namespace, ``None`` for events without one).
The batch is read per tenant and folded by ``(tenant, run_id)``, and a
deletion or clear touches its own tenant's session only, so the same ids in
two tenants never meet; the batch's writes of every tenant and its positions
are still one ``apply.lua`` call.

The builders of recently written runs are kept in memory (keyed by their
generation and last offset, so a stale one is never used). A batch takes its
runs' builders out of that cache and puts back only those of a commit that
went through: a builder is folded in place, so one folded for a write that
did not happen (a lost compare-and-set, a Redis that went away mid-call, a
dead letter not sent) would hold events Redis never got, and the next
attempt would drop them as duplicates - the run's body would lack them for
good. A run whose batch ends with its terminal event (``run_completed``,
``run_failed``, ``run_canceled``) is not put back: nothing moves its status
any more, so its builder would only be kept for events that rarely come
(and a later one finds the body in Redis, as after an eviction). In a
rebuild of many runs that keeps the held state to the runs still going,
and the collector from walking the ended ones.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, NamedTuple

import redis.exceptions

from runwire.contract.events import TERMINAL_EVENTS, SessionCleared, SessionEnded
from runwire.errors import RunwireError
from runwire.log.records import SourceRecord, TopicPartition
from runwire.projections.runtime.generations import ProjectionError
from runwire.projections.runtime.protocol import (
    ApplyResult,
    Batch,
    DeadLetterSink,
    Fault,
    Rejection,
)
from runwire.projections.runtime.rules import deleted_session
from runwire.projections.transcripts.body import restore_builder
from runwire.projections.transcripts.fold import fold_run
from runwire.projections.transcripts.store import (
    Commit,
    Conflict,
    PositionWrite,
    RunHead,
    RunWrite,
    Scoped,
    Slot,
    TranscriptStore,
)
from runwire.settings import Settings

if TYPE_CHECKING:
    from runwire.projections.transcripts.rebuild import TranscriptRebuild
    from runwire.transcript.ledger import TranscriptBuilder

log = logging.getLogger(__name__)

NAME = "transcripts"


class TranscriptConflictError(RunwireError):
    """A batch kept losing its compare-and-set to other writers; retried by the runner."""

    retriable = True


class TranscriptProjection:
    """:class:`~runwire.projections.runtime.protocol.Rebuildable` over a
    :class:`~runwire.projections.transcripts.store.TranscriptStore`.

    ``generation=None`` follows the live generation (a served projector);
    a number pins one generation (what a rebuild writes to).
    """

    def __init__(
        self,
        store: TranscriptStore,
        settings: Settings,
        *,
        generation: int | None = None,
        builder_cache_size: int = 4096,
        max_attempts: int = 50,
    ) -> None:
        self.store = store
        self._settings = settings
        self._generation = generation
        self._cache: OrderedDict[Scoped, tuple[int, int, TranscriptBuilder]] = OrderedDict()
        self._cache_size = builder_cache_size
        self._max_attempts = max_attempts
        # The generation last resolved: used optimistically, since every
        # commit checks it (a switch or reset fails the commit, which resolves again).
        self._resolved: tuple[Slot, int] | None = None
        # Builders are folded in place: one batch at a time per instance, so a
        # cached builder is never folded by two attempts at once.
        self._applying = asyncio.Lock()
        self.conflicts = 0

    @property
    def name(self) -> str:
        return NAME

    @property
    def topics(self) -> tuple[str, ...]:
        return (self._settings.run_events, self._settings.session_events)

    @property
    def generation(self) -> int | None:
        """The pinned generation, or None when following the live one."""
        return self._generation

    def pinned(self, generation: int) -> TranscriptProjection:
        return TranscriptProjection(
            self.store,
            self._settings,
            generation=generation,
            builder_cache_size=self._cache_size,
            max_attempts=self._max_attempts,
        )

    async def current_generation(self) -> tuple[Slot, int]:
        """The slot this projection writes through and the generation it names now."""
        self._resolved = await self._resolve()
        return self._resolved

    async def _resolve(self) -> tuple[Slot, int]:
        if self._generation is None:
            live = await self.store.generation(Slot.LIVE)
            assert live is not None
            return Slot.LIVE, live
        live = await self.store.generation(Slot.LIVE)
        building = await self.store.generation(Slot.BUILDING)
        if self._generation == building:
            return Slot.BUILDING, self._generation
        if self._generation == live:
            return Slot.LIVE, self._generation
        raise ProjectionError(
            f"generation {self._generation} of the transcript cache is gone (live {live}, "
            f"building {building}); a newer rebuild replaced it"
        )

    async def load_positions(
        self, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, int]:
        _, generation = await self.current_generation()
        return await self.store.positions(generation, partitions)

    def fault_of(self, error: BaseException) -> Fault | None:
        """What a Redis error means to the runtime (see :class:`Fault`): a connection
        or timeout is transient; any other error of Redis (a script that fails)
        fails every record alike."""
        if isinstance(error, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
            return Fault.TRANSIENT
        if isinstance(error, redis.exceptions.RedisError):
            return Fault.FINAL
        return None

    async def apply(self, batch: Batch, dead_letters: DeadLetterSink) -> ApplyResult:
        async with self._applying:
            return await self._apply(batch, dead_letters)

    async def _apply(self, batch: Batch, dead_letters: DeadLetterSink) -> ApplyResult:
        sent: set[tuple[str, int, int]] = set()
        for attempt in range(self._max_attempts):
            result = await self._attempt(batch, dead_letters, sent)
            if result is not None:
                return result
            self.conflicts += 1
            # Another writer won this round; let it finish before reading again.
            await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
        raise TranscriptConflictError(
            f"projection {NAME}: batch of {len(batch.records)} records lost its "
            f"compare-and-set {self._max_attempts} times in a row"
        )

    async def _attempt(
        self, batch: Batch, dead_letters: DeadLetterSink, sent: set[tuple[str, int, int]]
    ) -> ApplyResult | None:
        slot, generation = self._resolved or await self.current_generation()
        session_topic = self._settings.session_events
        grouped = _group(batch.records, session_topic, batch.next_positions.keys())
        snap = await self._snapshot(generation, grouped)
        stored, heads = snap.positions, snap.heads
        if any(stored[tp] < batch.expected.get(tp, 0) for tp in batch.next_positions):
            # Positions below the runner's look like a reset or a switch; make
            # sure they are not just those of a generation we resolved earlier.
            current = await self.current_generation()
            if current != (slot, generation):
                return None
        positions: dict[TopicPartition, int] = {}
        writes: list[PositionWrite] = []
        open_from: dict[TopicPartition, int] = {}
        for tp, nxt in batch.next_positions.items():
            have = stored[tp]
            if have < batch.expected.get(tp, 0):
                # Reset or switched under the runner: leave it, the runner seeks back.
                positions[tp] = have
                continue
            open_from[tp] = have
            positions[tp] = max(have, nxt)
            if positions[tp] != have:
                writes.append(PositionWrite(tp, have, positions[tp]))
        skipped = grouped.runless
        rejections: list[Rejection] = []
        deletions: set[Scoped] = set()
        clears: dict[Scoped, int] = {}
        endings: set[Scoped] = set()
        for record in grouped.session_records:
            start = open_from.get(record.tp)
            if start is None or record.offset < start:
                skipped += 1
                continue
            tenant = record.event.tenant
            deleted = deleted_session(record)
            cleared = clearing(record)
            if deleted is not None and (tenant, deleted) not in snap.deleted:
                deletions.add((tenant, deleted))
            elif cleared is not None and (tenant, cleared[0]) not in snap.deleted:
                # One session's events are in log order: the last clear wins.
                clears.pop((tenant, cleared[0]), None)
                clears[tenant, cleared[0]] = cleared[1]
            elif (ended := ending(record)) is not None and (tenant, ended) not in snap.deleted:
                endings.add((tenant, ended))
            else:
                skipped += 1  # not ours (the session index reads the rest)
        by_run: dict[Scoped, list[SourceRecord]] = {}
        for run, records in grouped.runs.items():
            # One run's records are one partition's, in offset order (the
            # runtime's envelope check): its start is looked up once.
            start = open_from.get(records[0].tp)
            if start is not None and records[0].offset < start:
                kept = [r for r in records if r.offset >= start]
                skipped += len(records) - len(kept)
                records = kept
            if start is None or not records:
                skipped += len(records)
                continue
            by_run[run] = records
        gone = snap.deleted | deletions
        erasures: list[Scoped] = []
        for run in list(by_run):
            if run in snap.erased:
                skipped += len(by_run.pop(run))  # erased: dropped, not dead-lettered
            elif gone and not gone.isdisjoint(
                (run[0], s) for s in _sessions(heads[run], by_run[run])
            ):
                # The run is (or would become) a deleted session's: it goes too,
                # so that its later events go even when they name no session.
                skipped += len(by_run.pop(run))
                erasures.append(run)
        heads = {run: heads[run] for run in by_run}
        builders = await self._builders(generation, heads)
        run_writes: list[RunWrite] = []
        applied = duplicates = 0
        folded: dict[Scoped, tuple[int, TranscriptBuilder]] = {}
        for run, records in by_run.items():
            fold = fold_run(run[1], heads[run], builders.get(run), records, tenant=run[0])
            skipped += fold.skipped
            applied += fold.applied
            duplicates += fold.duplicates
            rejections += fold.rejections
            if fold.write is not None:
                run_writes.append(fold.write)
            # An ended run's builder goes (see the module docstring).
            if fold.builder is not None and records[-1].event.type not in TERMINAL_EVENTS:
                last = fold.write.meta.last if fold.write is not None else heads[run].last
                folded[run] = (last, fold.builder)
        new = [r for r in rejections if (r.topic, r.partition, r.offset) not in sent]
        # Before the write: a position may only pass a record whose dead letter exists.
        await dead_letters.send(new)
        sent.update((r.topic, r.partition, r.offset) for r in new)
        # A clear of a session deleted in this batch is moot (and not recorded).
        cleared_now = [(t, s, ms) for (t, s), ms in clears.items() if (t, s) not in deletions]
        ended_now = sorted(endings - deletions, key=_scoped_order)
        if writes or run_writes or deletions or erasures or cleared_now or ended_now:
            outcome = await self.store.commit(
                Commit(
                    slot,
                    generation,
                    writes,
                    run_writes,
                    sorted(deletions, key=_scoped_order),
                    erasures,
                    cleared_now,
                    ended_now,
                )
            )
            if not outcome.ok:
                log.debug("projection %s: compare-and-set lost: %s", NAME, outcome.conflict)
                if outcome.kind is Conflict.GENERATION:
                    self._resolved = None
                return None
        for run, (last, builder) in folded.items():
            self._remember(run, generation, last, builder)
        return ApplyResult(
            positions=positions,
            applied=applied + len(deletions) + len(cleared_now) + len(ended_now),
            duplicates=duplicates,
            skipped=skipped,
            rejected=len(rejections),
        )

    async def _snapshot(self, generation: int, grouped: _Grouped) -> _Snapshot:
        """The store's snapshot of the batch's partitions, runs and sessions, read
        per tenant (one call for the usual batch, all of one tenant or none)."""
        runs: dict[str | None, list[str]] = {}
        for tenant, run_id in grouped.runs:
            runs.setdefault(tenant, []).append(run_id)
        sessions = grouped.sessions
        out = _Snapshot(dict.fromkeys(grouped.partitions, 0), {}, set(), set())
        partitions: Collection[TopicPartition] = grouped.partitions
        tenants = sorted(runs.keys() | sessions.keys(), key=_tenant_order) or [None]
        for tenant in tenants:
            snap = await self.store.snapshot(
                generation,
                partitions,
                runs.get(tenant, ()),
                sessions.get(tenant, ()),
                tenant=tenant,
            )
            if partitions:
                out.positions.update(snap.positions)
                partitions = ()  # the generation's, the same for every tenant
            out.heads.update({(tenant, r): h for r, h in snap.heads.items()})
            out.deleted.update((tenant, s) for s in snap.deleted)
            out.erased.update((tenant, r) for r in snap.erased)
        return out

    async def _builders(
        self, generation: int, heads: dict[Scoped, RunHead]
    ) -> dict[Scoped, TranscriptBuilder]:
        """A builder holding the stored state of every run that has a body.

        Cached builders are taken out of the cache (see the module docstring):
        the caller folds them in place and puts back those of a commit that
        went through (:meth:`_remember`).
        """
        out: dict[Scoped, TranscriptBuilder] = {}
        missing: dict[str | None, list[str]] = {}
        for run, head in heads.items():
            if not head.has_body:
                continue
            cached = self._cache.pop(run, None)
            if cached is not None and cached[0] == generation and cached[1] == head.last:
                out[run] = cached[2]
            else:
                missing.setdefault(run[0], []).append(run[1])
        for tenant, run_ids in missing.items():
            bodies = await self.store.bodies(generation, run_ids, tenant=tenant)
            for run_id in run_ids:
                run = (tenant, run_id)
                body = bodies.get(run_id)
                if body is None:
                    # Expired between the two reads: fold it as expired (the
                    # script checks the body is still absent).
                    heads[run] = RunHead(meta=heads[run].meta, has_body=False)
                else:
                    out[run] = restore_builder(run_id, body)
        return out

    def _remember(
        self, run: Scoped, generation: int, last: int, builder: TranscriptBuilder
    ) -> None:
        self._cache[run] = (generation, last, builder)
        self._cache.move_to_end(run)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    # -- Rebuildable -------------------------------------------------------------

    async def begin_rebuild(self, *, restart: bool = False) -> TranscriptRebuild:
        from runwire.projections.transcripts.rebuild import TranscriptRebuild

        generation, dropped = await self.store.begin_generation(restart=restart)
        if dropped is not None:
            await self.store.drop_generation(dropped)
        return TranscriptRebuild(self, generation)


class _Grouped(NamedTuple):
    """A batch's records sorted out in one pass: each run's (by ``(tenant,
    run_id)``, in log order), the session-events topic's, how many name no
    run, the sessions every record names (per tenant) and the partitions."""

    runs: dict[Scoped, list[SourceRecord]]
    session_records: list[SourceRecord]
    runless: int
    sessions: dict[str | None, set[str]]
    partitions: Collection[TopicPartition]


def _group(
    records: Sequence[SourceRecord], session_topic: str, partitions: Collection[TopicPartition]
) -> _Grouped:
    runs: dict[Scoped, list[SourceRecord]] = {}
    session_records: list[SourceRecord] = []
    sessions: dict[str | None, set[str]] = {}
    runless = 0
    for record in records:
        event = record.event
        tenant = event.tenant
        if event.session_id is not None:
            named = sessions.get(tenant)
            if named is None:
                named = sessions[tenant] = set()
            named.add(event.session_id)
        if record.topic == session_topic:
            session_records.append(record)
        elif event.run_id is None:
            runless += 1
        else:
            key = (tenant, event.run_id)
            held = runs.get(key)
            if held is None:
                runs[key] = [record]
            else:
                held.append(record)
    return _Grouped(runs, session_records, runless, sessions, partitions)


class _Snapshot(NamedTuple):
    """A :class:`~runwire.projections.transcripts.store.Snapshot` of every tenant
    of a batch: runs and sessions by ``(tenant, id)``."""

    positions: dict[TopicPartition, int]
    heads: dict[Scoped, RunHead]
    deleted: set[Scoped]
    erased: set[Scoped]


def _tenant_order(tenant: str | None) -> tuple[bool, str]:
    return tenant is not None, tenant or ""


def _scoped_order(scoped: Scoped) -> tuple[tuple[bool, str], str]:
    """An order of ``(tenant, id)`` pairs (None is not comparable with a tenant)."""
    return _tenant_order(scoped[0]), scoped[1]


def _sessions(head: RunHead, records: Sequence[SourceRecord]) -> set[str]:
    """The sessions a run belongs to: its stored one, else those its records name."""
    if head.meta is not None and head.meta.session_id is not None:
        return {head.meta.session_id}
    return {r.event.session_id for r in records if r.event.session_id is not None}


def ending(record: SourceRecord) -> str | None:
    """The session a session-events record ends; None: not an end to obey (as
    for :func:`clearing`)."""
    event = record.event
    if not isinstance(event.payload, SessionEnded) or not event.session_id:
        return None
    if record.key != event.session_id.encode():
        return None
    return event.session_id


def clearing(record: SourceRecord) -> tuple[str, int] | None:
    """The session a session-events record clears and its clear point (ms since
    the epoch of the event's ``occurred_at``, computed as the session index's
    ``cleared_at`` is turned into ms: ``runwire.sessions.planning.millis``);
    None: not a clear to obey (not one, or its record key is not its session
    id, which the session index rejects)."""
    event = record.event
    if not isinstance(event.payload, SessionCleared) or not event.session_id:
        return None
    if record.key != event.session_id.encode():
        return None
    return event.session_id, int(event.occurred_at.timestamp() * 1000)
