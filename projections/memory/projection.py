"""The memory projection: memory topic + session deletions -> ``memory_entries`` rows.

Rules: :mod:`runwire.projections.memory.fold`. Exactly-once in effect like every
Postgres projection (:class:`~runwire.projections.runtime.pg_projection.PostgresProjection`):
rows, applied event ids and partition positions change in one transaction.

Drive it with :class:`~runwire.projections.memory.fold.TombstoneDecoder` as
the projector's decoder (``memory_projector``, ``service.serve``,
``service.rebuild_memory``; the projection's ``decoder`` attribute names it),
or tombstones are dead-lettered instead of deleting (and
:class:`~runwire.memory.log_backend.LogMemoryBackend` says so on the next delete).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from runwire.contract.codec import codec_for
from runwire.contract.events import Event
from runwire.errors import DecodeError
from runwire.log.records import SourceRecord
from runwire.projections.memory.fold import (
    PLACEHOLDER,
    Entry,
    TombstoneDecoder,
    fold_memory,
    resolve,
    row_value,
    session_owners,
)
from runwire.projections.runtime.consumer import Projector, ProjectorOptions
from runwire.projections.runtime.generations import TableSet
from runwire.projections.runtime.pg import (
    ANY_EVENT_ID,
    CLAIMS,
    Pool,
    json_list,
    upsert_rows,
    upsert_sql,
)
from runwire.projections.runtime.pg_projection import FoldContext, PostgresProjection
from runwire.projections.runtime.protocol import Projection, Rejection
from runwire.projections.runtime.session_deletions import reaches, store_tombstones
from runwire.settings import Settings

NAME = "memory"

TABLES = TableSet(
    projection=NAME,
    package="runwire.projections.migrations.memory",
    tables=("memory_entries", "memory_session_tombstones", "memory_applied"),
    views=("memory_entries", "memory_session_tombstones"),
)

COLUMNS: tuple[tuple[str, str], ...] = (
    ("scope", "text"),
    ("owner", "text"),
    ("key", "text"),
    ("value", "jsonb"),
    ("user_id", "text"),
    ("tenant", "text"),
    ("updated_at", "timestamptz"),
    ("event_id", "uuid"),
)
COLUMN_NAMES = ", ".join(name for name, _ in COLUMNS)


_VALUE = [name for name, _ in COLUMNS].index("value")
"""A row is its :class:`Entry`'s fields in order (a unit test holds them equal)."""


def _row(entry: Entry) -> list[Any]:
    row: list[Any] = list(entry)
    row[_VALUE] = row_value(entry.value)  # exact numbers; see the fold
    return row


@dataclass(frozen=True, slots=True)
class _Loaded:
    """What :meth:`MemoryProjection.load` read for a batch."""

    resolved: list[tuple[SourceRecord, Event]]
    rejections: list[Rejection]
    tombstoned: dict[str, set[str | None]]
    seen: dict[tuple[str, str], str | None]


class MemoryProjection(PostgresProjection):
    """Folds the memory and session-events topics into ``memory_entries`` (rules: :mod:`.fold`)."""

    tables = TABLES
    applied_table = "memory_applied"
    decoder = TombstoneDecoder()
    """The decoder a projector must use for this projection (tombstones have no value)."""

    def __init__(self, pool: Pool, settings: Settings, *, generation: int | None = None) -> None:
        super().__init__(pool, (settings.memory, settings.session_events), generation=generation)
        self._settings = settings
        self.decoder = TombstoneDecoder(codec_for(settings))  # reads both framings
        self._session_topic = settings.session_events
        # One upsert for the batch; conflict on the address.
        self._upsert = upsert_sql("{table}", COLUMNS, "scope").replace(
            "ON CONFLICT (scope)", "ON CONFLICT (scope, owner, key)"
        )

    def pinned(self, generation: int) -> MemoryProjection:
        return MemoryProjection(self._pool, self._settings, generation=generation)

    def remember(self, record: SourceRecord) -> bool:
        # The fold remembers event ids itself: a tombstone's id is in its headers,
        # known only once it is resolved.
        return False

    async def load(
        self, ctx: FoldContext, records: Sequence[SourceRecord]
    ) -> Callable[[], Awaitable[_Loaded]]:
        """Resolve tombstones and queue the reads the fold needs (one round trip)."""
        resolved: list[tuple[SourceRecord, Event]] = []
        rejections: list[Rejection] = []
        placeholder = PLACEHOLDER.event_id
        for record in records:
            event = record.event
            if event.event_id == placeholder:  # resolve() only changes placeholders
                try:
                    event = resolve(record, tombstones=record.topic != self._session_topic)
                except DecodeError as e:
                    rejections.append(Rejection.of(record, e.reason, str(e), type(e).__name__))
                    continue
            resolved.append((record, event))
        events = [event for _, event in resolved]
        sessions = sorted(session_owners(events))
        # A session's entries (memory topic) and its deletion (session topic) may be
        # folded by two instances at once: serialise per session, in hash order (no
        # deadlock), before reading its tombstone.
        # Lists travel as one JSON text each (see json_list).
        owners = json_list(sessions)
        await ctx.conn.execute(
            "SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT "
            "hashtextextended('runwire-memory-session/' || s, 0) AS h "
            "FROM json_array_elements_text(%s::json) AS s ORDER BY h) AS locks",
            (owners,),
        )
        tombstones = await ctx.conn.execute(
            f"SELECT session_id, tenant FROM {ctx.table('memory_session_tombstones')} "
            "WHERE session_id IN (SELECT json_array_elements_text(%s::json))",
            (owners,),
        )
        applied = await ctx.conn.execute(
            f"SELECT event_id::text, stream, digest FROM {ctx.table('memory_applied')} "
            f"WHERE event_id = {ANY_EVENT_ID}",
            (json_list([e.event_id for e in events]),),
        )

        async def loaded() -> _Loaded:
            tombstoned: dict[str, set[str | None]] = {}
            for sid, tenant in await tombstones.fetchall():
                tombstoned.setdefault(sid, set()).add(tenant)
            return _Loaded(
                resolved,
                rejections,
                tombstoned=tombstoned,
                seen={(row[0], row[1]): row[2] for row in await applied.fetchall()},
            )

        return loaded

    async def fold(self, ctx: FoldContext, records: Sequence[SourceRecord]) -> list[Rejection]:
        conn = ctx.conn
        entries, tombstones, applied = (
            ctx.table("memory_entries"),
            ctx.table("memory_session_tombstones"),
            ctx.table("memory_applied"),
        )
        state: _Loaded = (
            ctx.loaded if ctx.loaded is not None else await (await self.load(ctx, records))()
        )
        resolved, rejections = state.resolved, list(state.rejections)
        if len(records) != len(resolved) + len(rejections):
            # Loaded for more records than are kept (some were applied before):
            # the kept ones are a subset, so as many means the same records.
            wanted = {(r.topic, r.partition, r.offset) for r in records}
            resolved = [(r, e) for r, e in resolved if (r.topic, r.partition, r.offset) in wanted]
            rejections = [r for r in rejections if (r.topic, r.partition, r.offset) in wanted]
        tombstoned, seen = state.tombstoned, state.seen
        folded = fold_memory(
            resolved, session_topic=self._session_topic, tombstoned=tombstoned, seen=seen
        )
        rejections += [Rejection.of(r, reason, message) for r, reason, message in folded.rejected]
        if folded.deletions:
            gone, by = await store_tombstones(conn, tombstones, folded.deletions)
            # The session's entries the deletion is not foreign to.
            await conn.execute(
                f"DELETE FROM {entries} AS e USING unnest(%b::text[], %b::text[]) AS d(s, tenant) "
                f"WHERE e.scope = 'session' AND e.owner = d.s AND {reaches('e')}",
                (gone, by),
            )
        if folded.erased_users:
            await conn.execute(
                f"DELETE FROM {entries} WHERE scope = 'user' AND owner = ANY(%s)",
                (sorted(folded.erased_users),),
            )
        # In address order (the order rows are locked in); addresses are
        # unique, so sorting the items never compares entries.
        ordered = sorted(folded.entries.items())
        rows = [_row(e) for _, e in ordered if e is not None]
        removed = [a for a, e in ordered if e is None]
        if rows:
            await conn.execute(
                self._upsert.replace("{table}", entries).encode(),
                upsert_rows(rows, COLUMNS),
            )
        if removed:
            await conn.execute(
                f"DELETE FROM {entries} WHERE (scope, owner, key) IN "
                "(SELECT a->>0, a->>1, a->>2 FROM json_array_elements(%s::json) AS a)",
                (json_list(removed),),
            )
        if folded.remembered:
            claims = [(*k, folded.remembered[k]) for k in sorted(folded.remembered)]
            await conn.execute(
                f"INSERT INTO {applied} (event_id, stream, digest) {CLAIMS} ON CONFLICT DO NOTHING",
                (json_list(claims),),
            )
        return rejections


def memory_projector(
    projection: Projection, settings: Settings, *, options: ProjectorOptions | None = None
) -> Projector:
    """A projector for the memory projection, with the decoder its tombstones need."""
    return Projector(
        projection, settings, decoder=TombstoneDecoder(codec_for(settings)), options=options
    )


@asynccontextmanager
async def open_memory(settings: Settings) -> AsyncIterator[Projection]:
    """The catalog opener: the projection on its own pool, its tables prepared."""
    from runwire.projections.runtime.pg import open_pool

    pool = await open_pool(settings, name="runwire-projector-memory")
    try:
        projection = MemoryProjection(pool, settings)
        await projection.prepare()
        yield projection
    finally:
        await pool.close()
