"""Reading the session index: ``SessionIndex.get / list / is_deleted / wait_for``.

Postgres failures are raised as :class:`~runwire.errors.StoreError`
(``retriable`` when the store is unavailable). ``jsonb`` columns (metadata,
labels) are read as text and parsed by :func:`runwire.contract.jsonvalues.loads`,
so metadata numbers come back exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from psycopg import sql

from runwire.contract import jsonvalues
from runwire.errors import NotFoundError
from runwire.projections.runtime.paging import Filters, Page, encode_token
from runwire.projections.runtime.pg import store_errors
from runwire.projections.runtime.pg_projection import PostgresReader
from runwire.projections.sessions.fold import Session
from runwire.projections.sessions.projection import COLUMNS, SessionsProjection

COLUMN_NAMES = ", ".join(f"{n}::text" if t == "jsonb" else n for n, t in COLUMNS)
_JSON = [i for i, (_, t) in enumerate(COLUMNS) if t == "jsonb"]


def _session(row: tuple[Any, ...]) -> Session:
    values = list(row)
    for i in _JSON:
        if values[i] is not None:
            values[i] = jsonvalues.loads(values[i])
    return Session(*values)


class SessionIndex(PostgresReader):
    """Read API over ``session_index`` (see :class:`PostgresReader` for opening and waiting)."""

    projection_class = SessionsProjection
    store = "the session index (Postgres)"

    async def get(self, session_id: str) -> Session:
        """The session; :class:`NotFoundError` when unknown or deleted."""
        with store_errors(self.store):
            async with self._connection() as conn:
                cur = await conn.execute(
                    f"SELECT {COLUMN_NAMES} FROM session_index WHERE session_id = %s",
                    (session_id,),
                )
                row = await cur.fetchone()
        if row is None:
            raise NotFoundError(f"session {session_id!r} is not in the session index")
        return _session(row)

    async def is_deleted(self, session_id: str) -> bool:
        """True when the session was deleted (its tombstone is kept)."""
        with store_errors(self.store):
            async with self._connection() as conn:
                cur = await conn.execute(
                    "SELECT 1 FROM session_tombstones WHERE session_id = %s", (session_id,)
                )
                return await cur.fetchone() is not None

    async def list(
        self,
        *,
        user_id: str | None = None,
        status: str | None = None,
        labels: Mapping[str, str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page: str | None = None,
        limit: int = 50,
        parent_session_id: str | None = None,
    ) -> Page[Session]:
        """Sessions matching every filter given, most recently active first, keyset-paged.

        ``since`` / ``until`` bound ``last_activity_at`` (inclusive / exclusive);
        ``parent_session_id`` lists the forks of a session.
        """
        filters = Filters()
        filters.equals("user_id", user_id)
        filters.equals("parent_session_id", parent_session_id)
        filters.equals("status", status)
        filters.labels(labels)
        filters.time_window("last_activity_at", since, until)
        filters.after_page(page, "last_activity_at", "session_id")
        query = sql.SQL(
            "SELECT {cols} FROM session_index {where} "
            "ORDER BY last_activity_at DESC, session_id DESC LIMIT %s"
        ).format(cols=sql.SQL(COLUMN_NAMES), where=filters.where())
        params = [*filters.params, limit + 1]
        with store_errors(self.store):
            async with self._connection() as conn:
                cur = await conn.execute(query, params)
                rows = [_session(row) for row in await cur.fetchall()]
        token = None
        if len(rows) > limit:
            rows = rows[:limit]
            token = encode_token(rows[-1].last_activity_at, rows[-1].session_id)
        return Page(items=rows, next_page=token)
