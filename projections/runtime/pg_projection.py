"""The base of every Postgres projection: positions, dedupe and copies done once.

A subclass says which topics it reads, which events it must remember (to
drop re-published duplicates) and how to fold a batch of fresh records into
its tables; this base keeps the :mod:`~runwire.projections.runtime.protocol`
contract around that:

- one transaction per batch, in pipeline mode, two round trips as a rule
  (BEGIN and COMMIT travel with them,
  :func:`~runwire.projections.runtime.pg.pipelined_transaction`): (1) the
  generation row ``FOR SHARE`` and the batch's position rows ``FOR UPDATE``
  (sorted), and behind them the applied event ids and the rows the fold
  needs, read from the copy the last batch wrote for the records from where
  the runner read (read again, a third trip, when the locks say otherwise;
  the batch applied again without the guess when that copy is gone); the
  fold (Python), the dead letters (sent before commit); (2) the writes, the
  new positions with the applied ids (one statement), commit;
- records below a stored position are skipped; a partition whose stored
  position is below the runner's expectation is left alone (the runner
  seeks back);
- events already applied (same event id in the same stream, same body) are
  dropped before the fold, and one with another body is dead-lettered as
  ``conflicting_duplicate_event`` (:mod:`runwire.contract.identity`); the
  ids of rejected events are not remembered, so a redrive can apply them.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import psycopg

from runwire.errors import InputError, StoreError
from runwire.log.records import LogPosition, SourceRecord, TopicPartition
from runwire.projections.runtime import rules, tenancy
from runwire.projections.runtime.generations import (
    GenerationState,
    TableSet,
    load_live_positions,
    load_positions,
    queue_lock_positions,
    store_positions,
)
from runwire.projections.runtime.pg import (
    ANY_EVENT_ID,
    CLAIMS,
    Conn,
    Pool,
    json_list,
    open_pool,
    pipelined_transaction,
    store_errors,
)
from runwire.projections.runtime.protocol import (
    ApplyResult,
    Batch,
    DeadLetterSink,
    Fault,
    Rebuild,
    Rejection,
)
from runwire.projections.runtime.waiting import wait_for
from runwire.settings import Settings


@dataclass(frozen=True, slots=True)
class FoldContext:
    """What a subclass's fold gets: the open transaction and the copy it writes."""

    conn: Conn
    generation: int
    tables: TableSet
    loaded: Any = None
    """What :meth:`PostgresProjection.load` read, when the projection reads ahead."""

    def table(self, base: str) -> str:
        return self.tables.table(base, self.generation)


class PostgresProjection(ABC):
    """A :class:`~runwire.projections.runtime.protocol.Rebuildable` on Postgres tables.

    ``generation=None`` follows the live copy (what a served projector does);
    a number pins one copy (what a rebuild writes to).
    """

    tables: TableSet
    applied_table: str
    """Base name of the table of applied event ids."""

    def __init__(self, pool: Pool, topics: Sequence[str], *, generation: int | None = None):
        self._pool = pool
        self._topics = tuple(topics)
        self._generation = generation
        self._copy_seen: int | None = None
        """The copy the last batch wrote (following the live one): the next one's guess."""

    # -- what subclasses provide ----------------------------------------------

    @abstractmethod
    def remember(self, record: SourceRecord) -> bool:
        """True when applying this event twice would change the tables."""

    async def load(
        self, ctx: FoldContext, records: Sequence[SourceRecord]
    ) -> Callable[[], Awaitable[Any]] | None:
        """Optionally queue the reads the fold of ``records`` needs.

        The connection is in pipeline mode: execute here without fetching and
        return a function that awaits the results; they travel with the
        base's own reads in one round trip and reach :meth:`fold` as
        ``ctx.loaded``. The default reads nothing (the fold reads for itself).
        It may be queued twice in one transaction (when the base's guess of
        the copy or the records was wrong, see the module docstring), so it
        only reads and takes locks; the second call's results are the ones
        the fold gets.
        """
        return None

    @abstractmethod
    async def fold(self, ctx: FoldContext, records: Sequence[SourceRecord]) -> list[Rejection]:
        """Fold fresh records (log order per partition) and write (or queue) the changes.

        Runs inside the batch's transaction. Returns the records rejected;
        they must leave the tables as if they had not been there.
        """

    @abstractmethod
    def pinned(self, generation: int) -> PostgresProjection:
        """The same projection writing to ``generation``."""

    # -- Projection -----------------------------------------------------------

    @property
    def name(self) -> str:
        return self.tables.projection

    @property
    def topics(self) -> tuple[str, ...]:
        return self._topics

    @property
    def pool(self) -> Pool:
        return self._pool

    @property
    def generation(self) -> int | None:
        """The pinned generation, or None when following the live one."""
        return self._generation

    async def prepare(self) -> int:
        """Apply migrations and create the live copy if needed; returns the live generation."""
        async with self._pool.connection() as conn:
            return await self.tables.ensure_live(conn)

    async def generations(self) -> GenerationState:
        """The live copy's generation and the one a rebuild is filling, if any."""
        async with self._pool.connection() as conn:
            return await self.tables.state(conn)

    async def load_positions(
        self, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, int]:
        async with self._pool.connection() as conn:
            generation = self._generation
            if generation is None:
                live = await load_live_positions(conn, self.name, partitions)
                if live is not None:
                    return live
                generation = (await self.tables.state(conn)).live
            return await load_positions(conn, self.name, generation, partitions)

    def fault_of(self, error: BaseException) -> Fault | None:
        """What a psycopg error means to the runtime (see :class:`Fault`)."""
        if isinstance(error, StoreError) and isinstance(error.__cause__, psycopg.Error):
            error = error.__cause__
        if not isinstance(error, psycopg.Error):
            return None
        # A missing table or privilege is a deployment problem, not the record's:
        # stall (loudly) until it is fixed rather than dead-letter the whole log.
        if isinstance(
            error,
            psycopg.OperationalError
            | psycopg.errors.UndefinedTable
            | psycopg.errors.UndefinedColumn
            | psycopg.errors.InsufficientPrivilege,
        ):
            return Fault.TRANSIENT
        if isinstance(error, psycopg.DataError | psycopg.IntegrityError):
            return Fault.RECORD
        return Fault.FINAL

    async def apply(self, batch: Batch, dead_letters: DeadLetterSink) -> ApplyResult:
        try:
            try:
                return await self._apply(batch, dead_letters, guess=True)
            except psycopg.errors.UndefinedTable:
                # The guessed copy is gone (switched, or a pinned one
                # discarded): once more, asking first which copy is there.
                return await self._apply(batch, dead_letters, guess=False)
        except BaseException:
            self._copy_seen = None  # the next batch asks which copy is live first
            raise

    async def _queue_reads(
        self, ctx: FoldContext, records: Sequence[SourceRecord]
    ) -> Callable[[], Awaitable[tuple[rules.Applied, Any]]]:
        """Queue what the fold of ``records`` reads: the applied ids, then :meth:`load`."""
        remember = self.remember
        # In no order: a read that takes no lock (sorting cost more than the query).
        ids = list({r.event.event_id for r in records if remember(r)})
        # What is stored for these ids, in every stream (usually nothing).
        # Ids and claims travel as one JSON text each (see json_list).
        known = await ctx.conn.execute(
            f"SELECT event_id::text, stream, digest FROM {ctx.table(self.applied_table)} "
            f"WHERE event_id = {ANY_EVENT_ID}",
            (json_list(ids),),
        )
        loaded = await self.load(ctx, records) if records else None

        async def result() -> tuple[rules.Applied, Any]:
            applied = {(row[0], row[1]): row[2] for row in await known.fetchall()}
            return applied, None if loaded is None else await loaded()

        return result

    async def _apply(
        self, batch: Batch, dead_letters: DeadLetterSink, *, guess: bool
    ) -> ApplyResult:
        async with self._pool.connection() as conn, pipelined_transaction(conn):
            # Atomicity is what the contract needs; durability of the last
            # commits is not: after a server crash, rows and positions roll
            # back together and the log is read again from there. So the
            # commit is asynchronous (set by the lock statement, for this
            # transaction alone).
            locked = await queue_lock_positions(
                conn, self.name, self._generation, batch.next_positions
            )
            # The usual case: the copy is the one the last batch wrote and the
            # stored positions are where the runner read from. The reads are
            # then queued behind the locks (the server runs them after it
            # holds them) and the batch saves a round trip; else they are
            # queued again once the locks have said what is true.
            copy = self._generation if self._generation is not None else self._copy_seen
            ahead = guessed = None
            if guess and copy is not None:
                guessed = rules.fresh_records(batch, batch.expected)
                ahead = await self._queue_reads(
                    FoldContext(conn=conn, generation=copy, tables=self.tables), guessed.records
                )
            generation, stored = await locked()  # round trip 1
            self._copy_seen = generation
            if guessed is not None and rules.same_positions(stored, batch.expected):
                fresh = guessed  # the same records: no second pass over the batch
            else:
                fresh = rules.fresh_records(batch, stored)
            ctx = FoldContext(conn=conn, generation=generation, tables=self.tables)
            if (
                ahead is None
                or guessed is None
                or copy != generation
                or (fresh is not guessed and fresh.records != guessed.records)
            ):
                ahead = await self._queue_reads(ctx, fresh.records)
            applied, loaded = await ahead()  # round trip 2 (1 when guessed right)
            sorted_out = rules.sort_out(fresh.records, self.remember, applied)
            records = sorted_out.kept
            folded: list[Rejection] = []
            if records:
                if loaded is not None:
                    ctx = dataclasses.replace(ctx, loaded=loaded)
                folded = await self.fold(ctx, records)
            # Rejected events are not applied: not remembered, so a redrive can apply them.
            claims = rules.remembered(sorted_out, folded)
            remembering: tuple[str, tuple[Any, ...]] | None = None
            if claims:
                rows = [(*key, claims[key]) for key in sorted(claims)]
                remembering = (
                    f"INSERT INTO {ctx.table(self.applied_table)} (event_id, stream, digest) "
                    f"{CLAIMS} ON CONFLICT DO NOTHING",
                    (json_list(rows),),
                )
            rejections = sorted_out.conflicts + folded
            forward = rules.next_positions(batch, stored, fresh.moved)
            # The claims go with the positions: one statement.
            await store_positions(conn, self.name, generation, forward, along=remembering)
            # Before commit (the last round trip): the position may only pass a
            # record whose dead letter exists.
            await dead_letters.send(rejections)
        return rules.result(batch, stored, forward, fresh, sorted_out, len(rejections))

    # -- Rebuildable ------------------------------------------------------------

    async def begin_rebuild(self, *, restart: bool = False) -> Rebuild:
        await self.prepare()
        async with self._pool.connection() as conn:
            generation = await self.tables.begin_rebuild(conn, restart=restart)
        return PostgresRebuild(self, generation)


class PostgresRebuild:
    """A copy being built; see :class:`~runwire.projections.runtime.protocol.Rebuild`."""

    def __init__(self, live: PostgresProjection, generation: int) -> None:
        self._live = live
        self._generation = generation
        self._projection = live.pinned(generation)

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def projection(self) -> PostgresProjection:
        return self._projection

    async def try_switch(self) -> bool:
        async with self._live.pool.connection() as conn:
            return await self._live.tables.try_switch(conn, self._generation)

    async def discard(self) -> None:
        async with self._live.pool.connection() as conn:
            await self._live.tables.discard(conn, self._generation)


class PostgresReader:
    """Base of the read APIs over a Postgres projection: pool ownership and waiting.

    Build one on a shared pool with ``Reader(pool, settings)``, or with its own
    small pool by ``await Reader.connect(settings)`` (closed by ``close`` or
    ``async with``). Either way the tables exist afterwards (``prepare``).

    Every query reads as the reader's ``tenant`` (:mod:`~runwire.projections.runtime.tenancy`):
    by default the process's (``settings.tenant``), else the rows without a
    tenant (:data:`~runwire.projections.runtime.tenancy.NO_TENANT`);
    ``tenant=`` or :meth:`for_tenant` say which. Every tenant's rows only
    when asked: ``admin=True`` (or ``tenant=ADMIN``).
    """

    projection_class: Callable[[Pool, Settings], PostgresProjection]
    store = "a projection store (Postgres)"
    """What the reader's :class:`~runwire.errors.StoreError` messages call it."""

    def __init__(
        self,
        pool: Pool,
        settings: Settings,
        *,
        tenant: tenancy.Scope | None = None,
        admin: bool = False,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._projection = self.projection_class(pool, settings)
        self._owned_pool = False
        if admin and tenant is not None and not isinstance(tenant, tenancy.Admin):
            raise InputError("tenant", f"admin=True reads every tenant, not {tenant!r}")
        self.tenant: tenancy.Scope = (
            tenancy.scope_of(settings, admin=admin) if tenant is None else tenancy.checked(tenant)
        )
        """Whose rows this reader sees: a tenant's, those without a tenant
        (``NO_TENANT``), or every row (``ADMIN``)."""

    def for_tenant(self, tenant: tenancy.Scope) -> Self:
        """This reader on the same pool, reading as ``tenant`` (``NO_TENANT``, ``ADMIN``)."""
        return type(self)(self._pool, self._settings, tenant=tenant)

    def _connection(self) -> AbstractAsyncContextManager[Conn]:
        """A connection reading as :attr:`tenant` (use it for every query)."""
        return tenancy.scoped(self._pool, self.tenant)

    @classmethod
    async def connect(
        cls, settings: Settings, *, tenant: tenancy.Scope | None = None, admin: bool = False
    ) -> Self:
        pool = await open_pool(settings, max_size=2, name=f"runwire-{cls.__name__}")
        try:
            reader = cls(pool, settings, tenant=tenant, admin=admin)
        except BaseException:
            await pool.close()
            raise
        reader._owned_pool = True
        try:
            await reader.prepare()
        except BaseException:
            await pool.close()
            raise
        return reader

    async def prepare(self) -> None:
        """Create the tables if no projector has yet (idempotent)."""
        await self._projection.prepare()

    async def close(self) -> None:
        """Close the pool if this reader opened it (idempotent)."""
        if self._owned_pool:
            self._owned_pool = False
            await self._pool.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def wait_for(
        self,
        position: LogPosition,
        timeout: float = 10.0,  # noqa: ASYNC109 - the read API's documented signature
        *,
        first_poll: float = 0.002,
        max_poll: float = 0.05,
    ) -> None:
        """Return once the projection has applied ``position`` (read-your-writes).

        ``position`` is what ``Publisher.publish`` returned; raises
        :class:`~runwire.projections.runtime.waiting.NotCaughtUpError` after ``timeout``,
        :class:`~runwire.errors.StoreError` when Postgres fails.
        """
        with store_errors(self.store):
            await wait_for(
                self._projection, position, timeout, first_poll=first_poll, max_poll=max_poll
            )
