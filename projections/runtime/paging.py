"""Keyset paging tokens: opaque to callers, the last row's sort key inside."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from psycopg import sql

from runwire.errors import RunwireError

T = TypeVar("T")


class BadPageToken(RunwireError):
    """A page token that this reader did not hand out."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of results; pass ``next_page`` back to get the following one."""

    items: list[T]
    next_page: str | None


def encode_token(at: datetime, key: str) -> str:
    raw = json.dumps([at.isoformat(), key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        at, key = json.loads(raw)
        return datetime.fromisoformat(at), str(key)
    except (ValueError, TypeError) as e:
        raise BadPageToken(f"not a page token: {token!r:.60}") from e


@dataclass
class Filters:
    """The WHERE clause of a keyset-paged listing, built one optional filter at a time.

    Every filter given narrows the listing; ``None`` (or no labels) leaves it out.
    """

    conditions: list[sql.Composable] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def equals(self, column: str, value: object | None) -> None:
        if value is not None:
            self._add(sql.SQL("{} = %s").format(sql.Identifier(column)), value)

    def labels(self, labels: Mapping[str, str] | None) -> None:
        """Every label given must be present with that value (jsonb containment, GIN-indexed)."""
        if labels:
            self._add(
                sql.SQL("labels @> %s::jsonb"), json.dumps(dict(labels), separators=(",", ":"))
            )

    def time_window(self, column: str, since: datetime | None, until: datetime | None) -> None:
        """``since`` inclusive, ``until`` exclusive."""
        if since is not None:
            self._add(sql.SQL("{} >= %s").format(sql.Identifier(column)), since)
        if until is not None:
            self._add(sql.SQL("{} < %s").format(sql.Identifier(column)), until)

    def after_page(
        self, page: str | None, time_column: str, key_column: str, *, ascending: bool = False
    ) -> None:
        """Rows after the last one of the page ``page`` was the token of, in listing order."""
        if page is None:
            return
        at, key = decode_token(page)
        self.conditions.append(
            sql.SQL("({}, {}) {} (%s, %s)").format(
                sql.Identifier(time_column),
                sql.Identifier(key_column),
                sql.SQL(">" if ascending else "<"),
            )
        )
        self.params.extend([at, key])

    def where(self) -> sql.Composable:
        if not self.conditions:
            return sql.SQL("")
        return sql.SQL("WHERE ") + sql.SQL(" AND ").join(self.conditions)

    def _add(self, condition: sql.Composable, value: object) -> None:
        self.conditions.append(condition)
        self.params.append(value)
