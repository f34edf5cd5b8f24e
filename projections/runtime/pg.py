"""Postgres plumbing shared by the Postgres projections and their readers.

Readers translate what psycopg and psycopg_pool raise at their boundary
(:func:`store_errors`): callers see a :class:`~runwire.errors.StoreError`
whose ``retriable`` says whether the same request may succeed later, never a
driver exception class.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, TypeAlias

import orjson
import psycopg
from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolClosed

from runwire.errors import StoreError, StoreUnavailableError
from runwire.settings import Settings

Conn: TypeAlias = AsyncConnection[TupleRow]
Pool: TypeAlias = AsyncConnectionPool[Conn]


async def open_pool(
    settings: Settings, *, min_size: int = 1, max_size: int = 4, name: str = "runwire"
) -> Pool:
    """An opened pool on ``settings.postgres_dsn`` (close it with ``await pool.close()``).

    Waits until the first connection succeeds so that a wrong DSN fails here,
    with the DSN's host in the error, rather than on first use.
    """
    pool: Pool = AsyncConnectionPool(
        settings.postgres_dsn,
        min_size=min_size,
        max_size=max_size,
        open=False,
        name=name,
        kwargs={"autocommit": True},
    )
    await pool.open(wait=True, timeout=15.0)
    return pool


@contextlib.asynccontextmanager
async def pipelined_transaction(conn: Conn) -> AsyncIterator[Conn]:
    """One transaction in pipeline mode whose BEGIN and COMMIT cost no round trip.

    ``conn.transaction()`` sends BEGIN and COMMIT each as a command of its own
    and waits for them (two round trips per transaction, as many as the whole
    batch's work); here they travel with the statements around them, and
    leaving the block is the transaction's one Sync. ``conn`` is in
    autocommit mode (the pool's connections are). On an error the
    transaction is rolled back and the error raised; nothing is committed.
    """
    try:
        async with conn.pipeline():
            await conn.execute("BEGIN")
            yield conn
            await conn.execute("COMMIT")
    except BaseException:
        if conn.info.transaction_status in (
            psycopg.pq.TransactionStatus.INTRANS,
            psycopg.pq.TransactionStatus.INERROR,
        ):
            with contextlib.suppress(psycopg.Error):
                await conn.execute("ROLLBACK")
        raise


def upsert_sql(table: str, columns: Sequence[tuple[str, str]], key: str) -> str:
    """One statement that upserts many rows given as one JSON text (:func:`upsert_rows`).

    ``columns`` are ``(name, postgres type)``. The rows travel as one ``jsonb``
    array of arrays, each value taken by its index and cast to its column's
    type; a jsonb column's value comes wrapped in a one-element array, so
    that a JSON ``null`` value stays one and SQL NULL (``null`` unwrapped)
    stays NULL. One JSON text for the same reason as :func:`json_list`.
    """
    names = ", ".join(n for n, _ in columns)
    select = ", ".join(
        f"r->{i}->0" if t == "jsonb" else f"(r->>{i})::{t}" for i, (_, t) in enumerate(columns)
    )
    updates = ", ".join(f"{n} = EXCLUDED.{n}" for n, _ in columns if n != key)
    return (
        f"INSERT INTO {table} ({names}) SELECT {select} "
        "FROM jsonb_array_elements(%s::jsonb) AS r "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )


def upsert_rows(rows: Sequence[Sequence[Any]], columns: Sequence[tuple[str, str]]) -> tuple[str]:
    """The parameters of :func:`upsert_sql`: ``rows`` as one JSON text.

    A jsonb column's value is its JSON text already (or None: SQL NULL),
    placed as it is (its numbers exact:
    :func:`runwire.contract.jsonvalues.jsonb_text`); datetimes are written in
    RFC 3339 with their offset, to the microsecond.
    """
    jsonb = [i for i, (_, t) in enumerate(columns) if t == "jsonb"]
    if jsonb:
        fragment = orjson.Fragment
        out = []
        for row in rows:
            values = list(row)
            for i in jsonb:
                if values[i] is not None:
                    values[i] = fragment(f"[{values[i]}]")
            out.append(values)
        rows = out
    return (json_list(rows),)


def json_list(values: Sequence[Any]) -> str:
    """``values`` as one JSON text parameter (``%s::json``).

    psycopg dumps a list parameter element by element in Python (microseconds
    per element); one JSON text is dumped at once and Postgres expands it.
    """
    return orjson.dumps(values).decode()


ANY_EVENT_ID = "ANY(ARRAY(SELECT json_array_elements_text(%s::json))::uuid[])"
"""``event_id = {ANY_EVENT_ID}`` with :func:`json_list` of event ids."""
CLAIMS = "SELECT (c->>0)::uuid, c->>1, c->>2 FROM json_array_elements(%s::json) AS c"
"""The rows ``(event_id, stream, digest)`` of :func:`json_list` of ``[id, stream, digest]``."""


_RETRIABLE_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57"})
"""Connection exceptions; transaction rollbacks (serialization failure,
deadlock); insufficient resources (too many connections, out of memory or
disk); operator intervention (shutdown, crash, cannot connect now, query
canceled). Every other SQLSTATE is the request's or the deployment's fault."""

_RETRIABLE_SQLSTATES = frozenset({"55P03"})
"""lock_not_available: another transaction holds the lock for now."""


def store_error(store: str, error: psycopg.Error) -> StoreError:
    """The runwire error for a psycopg / psycopg_pool error (returned; raise it ``from``).

    Retriable (:class:`StoreUnavailableError`): failures without a SQLSTATE
    that are operational (connection lost or refused, no pooled connection
    within the pool's timeout) and the SQLSTATEs above. Final
    (:class:`StoreError`): a closed pool (its owner is shutting down) and
    everything else (a missing table, a refused privilege, a broken statement).
    ``store`` names the store in the message.
    """
    sqlstate = error.sqlstate
    detail = " ".join(str(error).split()) or type(error).__name__
    if sqlstate:
        detail = f"{detail} (SQLSTATE {sqlstate})"
    if isinstance(error, PoolClosed):
        return StoreError(f"{store} is closed: {detail}", store=store)
    if sqlstate is None:
        retriable = isinstance(error, psycopg.OperationalError)
    else:
        retriable = sqlstate[:2] in _RETRIABLE_SQLSTATE_CLASSES or sqlstate in _RETRIABLE_SQLSTATES
    if retriable:
        return StoreUnavailableError(f"{store} is unavailable: {detail}", store=store)
    return StoreError(f"{store} refused the request: {detail}", store=store)


@contextlib.contextmanager
def store_errors(store: str) -> Iterator[None]:
    """Raise what psycopg / psycopg_pool raise inside as :func:`store_error` (``from`` it)."""
    try:
        yield
    except psycopg.Error as e:
        raise store_error(store, e) from e
