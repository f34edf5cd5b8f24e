"""Reading the usage projection: ``UsageStore.summary / wait_for``.

Contract (every implementation of :class:`UsageSource`, the in-memory twin
included; ``tests/contract/usage.py``):
- ``summary(by=...)`` groups the rollups by one dimension (run, session,
  user, agent, model, provider or UTC day) and sums calls and token counts,
  with each group's split by model and provider, from which the price table
  prices it (:mod:`.prices`).
- ``since`` / ``until`` bound the UTC day (inclusive / exclusive);
  ``user_id`` and ``tenant``, when given, keep that user's or tenant's usage
  only (the HTTP API always gives the caller's user).
- Days come oldest first (the newest ``limit`` days); every other dimension
  most tokens first, ties by key (bytewise, no key last), at most ``limit``.
  A group's key is None when the usage named none (no user, say).
- Readers query the ``usage_rollup`` view, which always shows the live copy;
  Postgres failures are :class:`~runwire.errors.StoreError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Literal, Protocol, get_args

from psycopg import sql

from runwire.errors import InputError
from runwire.projections.runtime.pg import store_errors
from runwire.projections.runtime.pg_projection import PostgresReader
from runwire.projections.usage.fold import COUNTS
from runwire.projections.usage.prices import Counts
from runwire.projections.usage.projection import UsageProjection

Dimension = Literal["run", "session", "user", "agent", "model", "provider", "day"]
DIMENSIONS: tuple[Dimension, ...] = get_args(Dimension)
COLUMN: dict[Dimension, str] = {
    "run": "run_id",
    "session": "session_id",
    "user": "user_id",
    "agent": "agent_id",
    "model": "model",
    "provider": "provider",
    "day": "day",
}
MAX_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Tokens:
    """Calls and token sums (the ``usage`` event's counts)."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Every token once: input, cache reads and writes, output (reasoning is in output)."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
        )

    def counts(self) -> Counts:
        return Counts(
            self.input_tokens, self.output_tokens, self.cache_read_tokens, self.cache_write_tokens
        )

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(
            self.calls + other.calls,
            *(getattr(self, n) + getattr(other, n) for n in COUNTS),
        )


@dataclass(frozen=True, slots=True)
class ModelUsage:
    """A group's usage of one model of one provider."""

    model: str
    provider: str
    tokens: Tokens


@dataclass(frozen=True, slots=True)
class UsageGroup:
    """One group of a summary: its key (ISO date for days) and its usage by model."""

    key: str | None
    tokens: Tokens
    models: tuple[ModelUsage, ...] = field(default=())


class UsageSource(Protocol):
    """What reads usage: :class:`UsageStore`, and the twin's reader."""

    async def summary(
        self,
        *,
        by: Dimension,
        since: date | None = None,
        until: date | None = None,
        user_id: str | None = None,
        tenant: str | None = None,
        limit: int = 100,
        scoped: bool = False,
    ) -> list[UsageGroup]:
        """Usage grouped ``by`` one dimension (see the module). ``scoped``: only the
        rows of exactly ``tenant`` (None: the rows without one), as a caller of
        that tenant sees them; otherwise ``tenant`` None means every tenant."""
        ...


def check_query(by: str, limit: int) -> None:
    """An :class:`InputError` naming what is wrong with a summary's arguments."""
    if by not in DIMENSIONS:
        raise InputError("by", f"{by!r} is not one of {', '.join(DIMENSIONS)}")
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError("limit", f"{limit} is not between 1 and {MAX_LIMIT}")


def _order(by: Dimension, group: UsageGroup) -> tuple[int, int, bytes]:
    key = group.key.encode() if group.key is not None else b""
    missing = int(group.key is None)
    if by == "day":
        return (0, 0, key)
    return (-group.tokens.total_tokens, missing, key)


def assemble(
    by: Dimension, parts: Iterable[tuple[str | None, str, str, Tokens]], limit: int
) -> list[UsageGroup]:
    """Groups from (key, model, provider, tokens) parts, ordered and cut (see the module)."""
    grouped: dict[str | None, list[ModelUsage]] = {}
    for key, model, provider, tokens in parts:
        grouped.setdefault(key, []).append(ModelUsage(model, provider, tokens))
    groups = []
    for key, models in grouped.items():
        total = Tokens()
        for m in models:
            total = total + m.tokens
        ordered = tuple(sorted(models, key=lambda m: (m.model.encode(), m.provider.encode())))
        groups.append(UsageGroup(key, total, ordered))
    groups.sort(key=lambda g: _order(by, g))
    if by == "day":
        return groups[-limit:]
    return groups[:limit]


class UsageStore(PostgresReader):
    """Read API over ``usage_rollup`` (see :class:`PostgresReader` for opening and waiting)."""

    projection_class = UsageProjection
    store = "the usage store (Postgres)"

    async def summary(
        self,
        *,
        by: Dimension,
        since: date | None = None,
        until: date | None = None,
        user_id: str | None = None,
        tenant: str | None = None,
        limit: int = 100,
        scoped: bool = False,
    ) -> list[UsageGroup]:
        check_query(by, limit)
        column = sql.Identifier(COLUMN[by])
        conditions: list[sql.Composable] = []
        params: list[object] = []
        for name, op, value in (
            ("day", ">=", since),
            ("day", "<", until),
            ("user_id", "=", user_id),
            ("tenant", "=", tenant),
        ):
            if value is not None:
                conditions.append(sql.SQL("{} {} %s").format(sql.Identifier(name), sql.SQL(op)))
                params.append(value)
        if scoped and tenant is None:
            conditions.append(sql.SQL("tenant IS NULL"))
        where = sql.SQL("WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")
        total = sql.SQL(
            "sum(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens)"
        )
        # The top groups first (the same order as assemble's), then their split by model.
        order: sql.Composable = sql.SQL("k DESC")
        if by != "day":
            order = sql.SQL('{t} DESC, {c} IS NULL, {c} COLLATE "C"').format(t=total, c=column)
        sums = sql.SQL(", ").join(
            sql.SQL("sum({})").format(sql.Identifier(n)) for n in ("calls", *COUNTS)
        )
        query = sql.SQL(
            "WITH top AS (SELECT {col} AS k FROM usage_rollup {where} GROUP BY 1 "
            "ORDER BY {order} LIMIT %s) "
            "SELECT u.{col}, u.model, u.provider, {sums} FROM usage_rollup AS u "
            "JOIN top ON u.{col} IS NOT DISTINCT FROM top.k {and_where} GROUP BY 1, 2, 3"
        ).format(
            col=column,
            where=where,
            order=order,
            sums=sums,
            and_where=(
                sql.SQL("AND ") + sql.SQL(" AND ").join(sql.SQL("u.") + c for c in conditions)
            )
            if conditions
            else sql.SQL(""),
        )
        with store_errors(self.store):
            async with self._pool.connection() as conn:
                cur = await conn.execute(query, [*params, limit, *params])
                rows = await cur.fetchall()
        parts = [
            (
                None if row[0] is None else str(row[0]),
                row[1],
                row[2],
                Tokens(*(int(v) for v in row[3:])),
            )
            for row in rows
        ]
        return assemble(by, parts, limit)
