"""Reading the run-status projection: ``RunStore.get / list / wait_for``.

Readers query the ``run_status`` view, which always shows the live copy; a
rebuild's switch is atomic for them. Postgres failures are raised as
:class:`~runwire.errors.StoreError` (``retriable`` when the store is unavailable).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import datetime

from psycopg import sql

from runwire.errors import NotFoundError
from runwire.projections.runs.fold import Run
from runwire.projections.runs.projection import COLUMN_NAMES, RunsProjection
from runwire.projections.runtime.paging import Filters, Page, encode_token
from runwire.projections.runtime.pg import store_errors
from runwire.projections.runtime.pg_projection import PostgresReader


class RunStore(PostgresReader):
    """Read API over ``run_status`` (see :class:`PostgresReader` for opening and waiting)."""

    projection_class = RunsProjection
    store = "the run-status store (Postgres)"

    async def get(self, run_id: str) -> Run:
        """The run; :class:`NotFoundError` when the projection has not seen it."""
        with store_errors(self.store):
            async with self._connection() as conn:
                cur = await conn.execute(
                    f"SELECT {COLUMN_NAMES} FROM run_status WHERE run_id = %s", (run_id,)
                )
                row = await cur.fetchone()
        if row is None:
            raise NotFoundError(f"run {run_id!r} is not in the run-status projection")
        return Run(*row)

    async def list(
        self,
        *,
        session_id: str | None = None,
        status: str | None = None,
        labels: Mapping[str, str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page: str | None = None,
        limit: int = 50,
        oldest_first: bool = False,
    ) -> Page[Run]:
        """Runs matching every filter given, newest first (by ``started_at``), keyset-paged.

        ``since`` / ``until`` bound ``started_at`` (inclusive / exclusive);
        ``labels`` must all be present with these values; ``oldest_first``
        gives a session's runs in conversation order.
        """
        filters = Filters()
        filters.equals("session_id", session_id)
        filters.equals("status", status)
        filters.labels(labels)
        filters.time_window("started_at", since, until)
        filters.after_page(page, "started_at", "run_id", ascending=oldest_first)
        query = sql.SQL(
            "SELECT {cols} FROM run_status {where} ORDER BY started_at {d}, run_id {d} LIMIT %s"
        ).format(
            cols=sql.SQL(COLUMN_NAMES),
            where=filters.where(),
            d=sql.SQL("ASC" if oldest_first else "DESC"),
        )
        params = [*filters.params, limit + 1]
        with store_errors(self.store):
            async with self._connection() as conn:
                cur = await conn.execute(query, params)
                rows = [Run(*row) for row in await cur.fetchall()]
        token = None
        if len(rows) > limit:
            rows = rows[:limit]
            token = encode_token(rows[-1].started_at, rows[-1].run_id)
        return Page(items=rows, next_page=token)

    async def children(self, run_id: str) -> builtins.list[Run]:
        """The runs ``run_id`` started (``parent_run_id``), oldest first."""
        with store_errors(self.store):
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    f"SELECT {COLUMN_NAMES} FROM run_status WHERE parent_run_id = %s "
                    "ORDER BY started_at, run_id",
                    (run_id,),
                )
                return [Run(*row) for row in await cur.fetchall()]

    async def tree(self, run_id: str, *, max_runs: int = 1000) -> builtins.list[tuple[int, Run]]:
        """``run_id`` and its descendants as ``(depth, run)``, depth first, siblings by
        run id (at most ``max_runs``); :class:`NotFoundError` for an unknown run."""
        with store_errors(self.store):
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "WITH RECURSIVE tree(run_id, depth, path) AS ("
                    " SELECT run_id, 0, ARRAY[run_id] FROM run_status WHERE run_id = %s"
                    " UNION ALL"
                    " SELECT r.run_id, t.depth + 1, t.path || r.run_id"
                    " FROM run_status r JOIN tree t ON r.parent_run_id = t.run_id"
                    # A run id seen on the path again would be a cycle: never followed.
                    " WHERE NOT r.run_id = ANY(t.path) AND t.depth < 64"
                    f") SELECT t.depth, {', '.join('r.' + c for c in COLUMN_NAMES.split(', '))}"
                    " FROM tree t JOIN run_status r USING (run_id)"
                    " ORDER BY t.path LIMIT %s",
                    (run_id, max_runs),
                )
                rows = await cur.fetchall()
        if not rows:
            raise NotFoundError(f"run {run_id!r} is not in the run-status projection")
        return [(row[0], Run(*row[1:])) for row in rows]
