"""Postgres plumbing shared by the Postgres projections and their readers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

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


def upsert_sql(table: str, columns: Sequence[tuple[str, str]], key: str) -> str:
    """One statement that upserts many rows given as one array per column.

    ``columns`` are ``(name, postgres type)``; jsonb columns travel as text
    arrays and are cast per element (psycopg has no jsonb[] dumper for dicts).
    Arrays go in binary (``%b``): text arrays would be quoted element by
    element, which costs more than the rest of a batch.
    """
    arrays = ", ".join(f"%b::{'text' if t == 'jsonb' else t}[]" for _, t in columns)
    names = ", ".join(n for n, _ in columns)
    select = ", ".join(f"u.{n}::jsonb" if t == "jsonb" else f"u.{n}" for n, t in columns)
    updates = ", ".join(f"{n} = EXCLUDED.{n}" for n, _ in columns if n != key)
    return (
        f"INSERT INTO {table} ({names}) SELECT {select} FROM unnest({arrays}) AS u({names}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )


def column_arrays(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows to one list per column (the parameters of :func:`upsert_sql`)."""
    return [[row[i] for row in rows] for i in range(width)]
