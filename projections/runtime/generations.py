"""Copies (generations) of a Postgres projection, their positions, and the switch.

Every Postgres projection keeps its rows in tables tagged by generation
(``run_status__g1``) and serves readers through views without the tag
(``run_status``). ``runwire_projection_generations`` names the live copy and
the one a rebuild is filling; ``runwire_projection_positions`` holds each
copy's partition positions.

Contract:
- :meth:`TableSet.ensure_live` creates the runtime tables, the first copy and
  the views, and applies new migrations to the live copy; idempotent and safe
  concurrently (advisory lock).
- Writers lock the generations row ``FOR SHARE`` at the start of every
  transaction; :meth:`TableSet.try_switch` locks it ``FOR UPDATE``. So a
  switch waits for in-flight writes, and writes after it see the new copy.
- The switch (generation row, views, dropping the old copy) is one
  transaction: readers see either the old copy or the new one, never a mix.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from runwire.log.records import TopicPartition
from runwire.projections.migrations.runner import (
    apply_migrations,
    load_migrations,
    load_sql,
    migrate_runtime,
    migration_lock,
)
from runwire.projections.runtime.pg import Conn
from runwire.projections.runtime.protocol import ProjectionError as ProjectionError


def tag(generation: int) -> str:
    return f"g{generation}"


@dataclass(frozen=True, slots=True)
class GenerationState:
    live: int
    building: int | None


@dataclass(frozen=True, slots=True)
class TableSet:
    """The tables of one Postgres projection and where their SQL lives.

    ``tables`` are base names: generation ``n`` has ``<base>__g<n>``.
    ``views`` are what ``view.sql`` creates for readers. ``package`` holds
    the ``NNNN_*.sql`` migrations and ``view.sql``, all templated with
    ``{{gen}}``.
    """

    projection: str
    package: str
    tables: tuple[str, ...]
    views: tuple[str, ...]

    def table(self, base: str, generation: int) -> str:
        return f"{base}__{tag(generation)}"

    def scope(self, generation: int) -> str:
        return f"{self.projection}@{tag(generation)}"

    async def _migrate_copy(self, conn: Conn, generation: int) -> bool:
        applied = await apply_migrations(
            conn,
            self.scope(generation),
            load_migrations(self.package),
            {"gen": tag(generation)},
        )
        return bool(applied)

    async def _create_views(self, conn: Conn, generation: int) -> None:
        text = load_sql(self.package, "view.sql").replace("{{gen}}", tag(generation))
        await conn.execute(text.encode())

    async def ensure_live(self, conn: Conn) -> int:
        """Create or upgrade the live copy and its views; returns its generation."""
        async with conn.transaction():
            await migration_lock(conn)
            await migrate_runtime(conn)
            await conn.execute(
                "INSERT INTO runwire_projection_generations (projection, live) VALUES (%s, 1) "
                "ON CONFLICT (projection) DO NOTHING",
                (self.projection,),
            )
            state = await self.state(conn, lock="FOR UPDATE")
            changed = await self._migrate_copy(conn, state.live)
            cur = await conn.execute(
                "SELECT count(to_regclass(v)) FROM unnest(%s::text[]) AS v", (list(self.views),)
            )
            row = await cur.fetchone()
            if changed or row is None or row[0] != len(self.views):
                await self._create_views(conn, state.live)
            return state.live

    async def state(self, conn: Conn, *, lock: str = "") -> GenerationState:
        """The live and building generations (``lock``: '', 'FOR SHARE', 'FOR UPDATE')."""
        cur = await conn.execute(
            sql.SQL(
                "SELECT live, building FROM runwire_projection_generations WHERE projection = %s "
            )
            + sql.SQL(lock),
            (self.projection,),
        )
        row = await cur.fetchone()
        if row is None:
            raise ProjectionError(
                f"projection {self.projection!r} has no tables in this schema yet; "
                "start its projector (runwire serve projector-...) or its reader once"
            )
        return GenerationState(live=row[0], building=row[1])

    async def begin_rebuild(self, conn: Conn, *, restart: bool) -> int:
        """Create (or resume) the copy a rebuild fills; returns its generation."""
        async with conn.transaction():
            await migration_lock(conn)
            state = await self.state(conn, lock="FOR UPDATE")
            if state.building is not None and not restart:
                await self._migrate_copy(conn, state.building)
                return state.building
            if state.building is not None:
                await self._drop_copy(conn, state.building)
            generation = max(state.live, state.building or 0) + 1
            await self._drop_copy(conn, generation)  # leftovers of a crashed switch
            await self._migrate_copy(conn, generation)
            await conn.execute(
                "UPDATE runwire_projection_generations SET building = %s WHERE projection = %s",
                (generation, self.projection),
            )
            return generation

    async def try_switch(self, conn: Conn, generation: int) -> bool:
        """Make ``generation`` live if it has caught up with the live copy; drop the old one."""
        async with conn.transaction():
            state = await self.state(conn, lock="FOR UPDATE")
            if state.building != generation:
                raise ProjectionError(
                    f"rebuild of {self.projection!r} into {tag(generation)} was abandoned "
                    f"(building is now {state.building}, live {state.live})"
                )
            live = await load_positions(conn, self.projection, state.live, None)
            new = await load_positions(conn, self.projection, generation, None)
            if any(new.get(tp, 0) < pos for tp, pos in live.items()):
                return False
            await conn.execute(
                "UPDATE runwire_projection_generations "
                "SET live = %s, building = NULL, switched_at = now() WHERE projection = %s",
                (generation, self.projection),
            )
            await self._create_views(conn, generation)
            await self._drop_copy(conn, state.live)
            return True

    async def discard(self, conn: Conn, generation: int) -> None:
        """Drop a copy that is being built (idempotent; never the live one)."""
        async with conn.transaction():
            state = await self.state(conn, lock="FOR UPDATE")
            if generation == state.live:
                raise ProjectionError(f"{tag(generation)} of {self.projection!r} is live")
            if state.building == generation:
                await conn.execute(
                    "UPDATE runwire_projection_generations SET building = NULL "
                    "WHERE projection = %s",
                    (self.projection,),
                )
            await self._drop_copy(conn, generation)

    async def _drop_copy(self, conn: Conn, generation: int) -> None:
        for base in self.tables:
            await conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {}").format(
                    sql.Identifier(self.table(base, generation))
                )
            )
        await conn.execute(
            "DELETE FROM runwire_projection_positions WHERE projection = %s AND generation = %s",
            (self.projection, generation),
        )
        await conn.execute(
            "DELETE FROM runwire_schema_migrations WHERE scope = %s", (self.scope(generation),)
        )


async def load_positions(
    conn: Conn,
    projection: str,
    generation: int,
    partitions: Collection[TopicPartition] | None,
) -> dict[TopicPartition, int]:
    """Stored positions of a copy (all of them when ``partitions`` is None)."""
    cur = await conn.execute(
        "SELECT topic, partition, next_offset FROM runwire_projection_positions "
        "WHERE projection = %s AND generation = %s",
        (projection, generation),
    )
    stored = {TopicPartition(t, p): o for t, p, o in await cur.fetchall()}
    if partitions is None:
        return stored
    return {tp: stored.get(tp, 0) for tp in partitions}


_LIVE = "(SELECT live FROM runwire_projection_generations WHERE projection = %s)"


async def load_live_positions(
    conn: Conn, projection: str, partitions: Collection[TopicPartition]
) -> dict[TopicPartition, int] | None:
    """Stored positions of the live copy in one round trip (read-your-writes polls
    it); None when nothing is stored for it (no copy yet, or a fresh one): ask
    :meth:`Generations.state`, which says which."""
    cur = await conn.execute(
        "SELECT topic, partition, next_offset FROM runwire_projection_positions "
        "WHERE projection = %s AND generation = " + _LIVE,
        (projection, projection),
    )
    rows = await cur.fetchall()
    if not rows:
        return None
    stored = {TopicPartition(t, p): o for t, p, o in rows}
    return {tp: stored.get(tp, 0) for tp in partitions}


async def queue_lock_positions(
    conn: Conn, projection: str, generation: int | None, partitions: Iterable[TopicPartition]
) -> Callable[[], Awaitable[tuple[int, dict[TopicPartition, int]]]]:
    """Queue the locks of the generation row (shared) and of ``partitions``' position rows.

    Position rows are created at 0 when missing, and locked in one sorted
    order by every writer: two instances that briefly own the same
    partitions during a rebalance serialise instead of deadlocking, and the
    second one then sees what the first applied. ``generation=None`` means
    the live copy. In pipeline mode nothing waits until the returned
    function is awaited; it gives the generation and the stored positions.
    The same statement makes the transaction's commit asynchronous
    (``synchronous_commit`` off for it alone; see
    :class:`~runwire.projections.runtime.pg_projection.PostgresProjection`):
    one statement fewer per batch than a ``SET LOCAL`` of its own.
    """
    tps = sorted(set(partitions))
    topics = [tp.topic for tp in tps]
    parts = [tp.partition for tp in tps]
    gen = sql.SQL(_LIVE) if generation is None else sql.Literal(generation)
    state = await conn.execute(
        "SELECT live, building, set_config('synchronous_commit', 'off', true) "
        "FROM runwire_projection_generations WHERE projection = %s FOR SHARE",
        (projection,),
    )
    args: tuple[object, ...] = (projection,) if generation is None else ()
    await conn.execute(
        sql.SQL(
            "INSERT INTO runwire_projection_positions (projection, generation, topic, "
            "partition, next_offset) SELECT %s, {gen}, t, p, 0 "
            "FROM unnest(%b::text[], %b::int[]) AS u(t, p) ORDER BY t, p ON CONFLICT DO NOTHING"
        ).format(gen=gen),
        (projection, *args, topics, parts),
    )
    positions = await conn.execute(
        sql.SQL(
            "SELECT topic, partition, next_offset FROM runwire_projection_positions "
            "WHERE projection = %s AND generation = {gen} "
            "AND (topic, partition) IN (SELECT * FROM unnest(%b::text[], %b::int[])) "
            "ORDER BY topic, partition FOR UPDATE"
        ).format(gen=gen),
        (projection, *args, topics, parts),
    )

    async def result() -> tuple[int, dict[TopicPartition, int]]:
        row = await state.fetchone()
        if row is None:
            raise ProjectionError(f"projection {projection!r} has no tables in this schema")
        live, building, _ = row
        if generation is not None and generation not in (live, building):
            raise ProjectionError(
                f"copy {tag(generation)} of {projection!r} is gone (live {tag(live)}, "
                f"building {building}); a newer rebuild replaced it"
            )
        stored = {TopicPartition(t, p): o for t, p, o in await positions.fetchall()}
        return (live if generation is None else generation), stored

    return result


async def store_positions(
    conn: Conn,
    projection: str,
    generation: int,
    positions: dict[TopicPartition, int],
    *,
    along: tuple[str, tuple[Any, ...]] | None = None,
) -> None:
    """Move locked position rows forward (never back).

    ``along``: a data-modifying statement (its SQL and parameters) that
    depends on nothing the update writes, run as part of the same statement
    (a ``WITH`` clause): one statement, one server round of work, fewer.
    """
    prefix, args = ("", ()) if along is None else (f"WITH along AS ({along[0]}) ", along[1])
    if not positions:
        if along is not None:
            await conn.execute(along[0], along[1])
        return
    tps = sorted(positions)
    await conn.execute(
        f"{prefix}UPDATE runwire_projection_positions AS p "
        "SET next_offset = GREATEST(p.next_offset, u.o), "
        "updated_at = now() FROM unnest(%b::text[], %b::int[], %b::bigint[]) AS u(t, n, o) "
        "WHERE p.projection = %s AND p.generation = %s AND p.topic = u.t AND p.partition = u.n",
        (
            *args,
            [tp.topic for tp in tps],
            [tp.partition for tp in tps],
            [positions[tp] for tp in tps],
            projection,
            generation,
        ),
    )
