"""The miss path: a transcript that is not in Redis is rebuilt from the log.

A miss is a run whose body is absent: its TTL expired, Redis was flushed,
or the projector has not reached it. The run is re-read from its partition
of the run-events topic - from its first to its last offset, known from the
cache's own meta when it survived, else from the run-status store
(:class:`RunLocator`) - folded with the ledger, and written back with a
``FILL`` guard: the write happens only if the cache does not hold newer data
for the run by then (a projector write in between wins; the fill then reads
the few newer records and tries again).

Contract of :meth:`MissPath.fill`:
- Returns the run's messages as of at least the offset the cache or the
  run-status store knew when the fill began; None when neither knows the run.
- Folds exactly as the projector does (records the ledger refuses are
  skipped, as the projector dead-letters them), so the body it writes is the
  one the projector would have written, and sets the run's last offset to the
  last record that changed the transcript.
- Reads one tenant's run (``fill(run_id, tenant)``): the run-status store
  may locate the same run id of another tenant (same key, same partition),
  so only records whose event names ``tenant`` are folded, and a run none
  of whose records is the tenant's is unknown (None).
- Never refills a run of an erased session: when the run is erased, or its
  session (its stored one or one its records name) is deleted in the live
  generation, the fill writes nothing and returns None, as for an unknown
  run. The store refuses a fill of such a run (``Conflict.DELETED``), so a
  deletion applied while the fill read the log wins too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from runwire.errors import NotFoundError
from runwire.log.records import SourceRecord
from runwire.projections.runtime.tenancy import NO_TENANT
from runwire.projections.transcripts.body import decode_messages, encode_body
from runwire.projections.transcripts.fold import millis
from runwire.projections.transcripts.keys import owner_tag
from runwire.projections.transcripts.store import (
    Commit,
    Conflict,
    Guard,
    RunMeta,
    RunWrite,
    Slot,
    TranscriptStore,
)
from runwire.settings import Settings
from runwire.transcript.errors import LedgerError
from runwire.transcript.ledger import TranscriptBuilder

if TYPE_CHECKING:
    from runwire.projections.runs.reader import RunStore
    from runwire.transcript.messages import Message


@dataclass(frozen=True, slots=True)
class RunLocation:
    """Where a run's records lie: one partition of the run-events topic, inclusive offsets."""

    partition: int
    first_offset: int
    last_offset: int


class RunLocator(Protocol):
    """Knows where runs lie in the log (the run-status store in production)."""

    async def locate(self, run_id: str) -> RunLocation | None:
        """The run's location, or None when the run is unknown."""
        ...

    async def session_runs(self, session_id: str, owner: str = "") -> list[str]:
        """The session's run ids, oldest first (only ``owner``'s, an
        :func:`~runwire.projections.transcripts.keys.owner_tag`, when given)."""
        ...


class RunStoreLocator:
    """:class:`RunLocator` over the run-status projection (its ``RunStore``)."""

    def __init__(self, runs: RunStore) -> None:
        self._runs = runs

    def for_tenant(self, tenant: str | None) -> RunStoreLocator:
        """This locator reading the run-status store as ``tenant`` (None: the rows
        without a tenant)."""
        return RunStoreLocator(self._runs.for_tenant(NO_TENANT if tenant is None else tenant))

    async def locate(self, run_id: str) -> RunLocation | None:
        try:
            run = await self._runs.get(run_id)
        except NotFoundError:
            return None
        return RunLocation(run.log_partition, run.first_offset, run.last_offset)

    async def session_runs(self, session_id: str, owner: str = "") -> list[str]:
        out: list[str] = []
        page: str | None = None
        while True:
            found = await self._runs.list(
                session_id=session_id, oldest_first=True, page=page, limit=500
            )
            out += [
                run.run_id
                for run in found.items
                if not owner or owner_tag(run.user_id, run.tenant) == owner
            ]
            page = found.next_page
            if page is None:
                return out


class LazyRunStoreLocator:
    """:class:`RunStoreLocator` that opens its own run-status store on first use
    (so readers that never miss never connect to Postgres); ``close`` closes it."""

    def __init__(self, settings: Settings, tenant: str | None = None) -> None:
        self._settings = settings
        self._tenant = tenant
        self._runs: RunStore | None = None

    def for_tenant(self, tenant: str | None) -> LazyRunStoreLocator:
        """Another lazy locator reading the run-status store as ``tenant`` (None:
        the rows without a tenant)."""
        return LazyRunStoreLocator(self._settings, tenant)

    async def _locator(self) -> RunStoreLocator:
        if self._runs is None:
            from runwire.projections.runs.reader import RunStore

            tenant = NO_TENANT if self._tenant is None else self._tenant
            self._runs = await RunStore.connect(self._settings, tenant=tenant)
        return RunStoreLocator(self._runs)

    async def locate(self, run_id: str) -> RunLocation | None:
        return await (await self._locator()).locate(run_id)

    async def session_runs(self, session_id: str, owner: str = "") -> list[str]:
        return await (await self._locator()).session_runs(session_id, owner)

    async def close(self) -> None:
        runs, self._runs = self._runs, None
        if runs is not None:
            await runs.close()


class RunLog(Protocol):
    """Reads one run's records back from the run-events topic."""

    async def read(self, run_id: str, partition: int, first: int, last: int) -> list[SourceRecord]:
        """The run's decodable records with ``first <= offset <= last``, in log order."""
        ...


@dataclass(slots=True)
class _Progress:
    """A fill's fold so far (kept across retries so only new records are read)."""

    partition: int
    builder: TranscriptBuilder
    folded_to: int
    changed_at: int | None = None
    first: SourceRecord | None = None
    sessions: set[str] = field(default_factory=set)
    foreign: bool = False
    """Records of another tenant's run of the same id were read (and left out)."""


class MissPath:
    """Rebuilds missing transcripts from the log; see the module contract."""

    def __init__(
        self,
        store: TranscriptStore,
        run_log: RunLog,
        locator: RunLocator | None,
        *,
        max_attempts: int = 20,
    ) -> None:
        self._store = store
        self._log = run_log
        self._locator = locator
        self._max_attempts = max_attempts
        self.fills = 0

    async def fill(self, run_id: str, tenant: str | None = None) -> list[Message] | None:
        """``tenant``'s run ``run_id`` (see the module contract)."""
        progress: _Progress | None = None
        for _ in range(self._max_attempts):
            generation = await self._store.generation(Slot.LIVE)
            assert generation is not None
            snap = await self._store.snapshot(generation, (), [run_id], tenant=tenant)
            if snap.erased or snap.deleted:
                return None  # erased with its session: as if unknown
            head = snap.heads[run_id]
            if head.has_body:
                found = await self._store.messages(generation, [run_id], tenant=tenant)
                if run_id in found:
                    return decode_messages(found[run_id])
                continue  # expired between the two reads
            if head.meta is not None:
                partition, first, target = head.meta.partition, head.meta.first, head.meta.last
            else:
                location = await self._locator.locate(run_id) if self._locator else None
                if location is None:
                    return None
                partition = location.partition
                first, target = location.first_offset, location.last_offset
            if progress is None or progress.partition != partition:
                progress = _Progress(partition, TranscriptBuilder(run_id), first - 1)
            if target > progress.folded_to:
                records = await self._log.read(run_id, partition, progress.folded_to + 1, target)
                # The same run id in another tenant is another run (same key,
                # same partition): only this tenant's records are its.
                mine = [r for r in records if r.event.tenant == tenant]
                progress.foreign |= len(mine) != len(records)
                _fold(progress, mine)
                progress.folded_to = target
            if progress.sessions and await self._store.deleted(
                generation, progress.sessions, tenant=tenant
            ):
                return None  # a deleted session's: as if unknown
            meta = self._meta(head.meta, progress)
            if meta is None:
                # Located, but none of its records could be read, or none is
                # this tenant's (the locator found another tenant's run).
                return None if progress.foreign else []
            write = RunWrite(
                run_id=run_id,
                guard=Guard.FILL,
                expected_last=head.last,
                expected_body=False,
                meta=meta,
                body=encode_body(progress.builder),
                tenant=tenant,
            )
            outcome = await self._store.commit(Commit(Slot.LIVE, generation, (), [write]))
            if outcome.ok:
                self.fills += 1
                return progress.builder.messages()
            if outcome.kind is Conflict.DELETED:
                return None  # erased while it was read
        # Kept losing to writers: what was folded is still correct as of its read.
        return progress.builder.messages() if progress is not None else None

    @staticmethod
    def _meta(known: RunMeta | None, progress: _Progress) -> RunMeta | None:
        if known is not None:
            last = max(known.last, progress.changed_at if progress.changed_at is not None else -1)
            return dataclasses.replace(known, last=last)
        first = progress.first
        if first is None:
            return None
        last = progress.changed_at if progress.changed_at is not None else first.offset
        return RunMeta(
            progress.partition,
            first.offset,
            last,
            first.event.session_id,
            millis(first),
            owner_tag(first.event.user_id, first.event.tenant),
        )


def _fold(progress: _Progress, records: Sequence[SourceRecord]) -> None:
    for record in records:
        if record.event.session_id is not None:
            progress.sessions.add(record.event.session_id)
        if progress.first is None:
            progress.first = record
            progress.changed_at = record.offset  # creating the run is a change
        try:
            if progress.builder.apply(record.event):
                progress.changed_at = record.offset
        except LedgerError:
            continue  # the projector dead-lettered it
