"""Keyset paging tokens: opaque to callers, the last row's sort key inside.

- ``encode_token`` / ``decode_token``: a store's token, base64url of the JSON
  ``[<sort time>, <key>]``. Stores hand these to trusted callers (the CLI
  pages across processes with them); ``decode_token`` refuses anything that
  is not one (a key that is no id, a time without a zone) with
  :class:`BadPageToken`, so no such value reaches a query.
- :class:`PageTokenSigner`: what a service that hands tokens to untrusted
  callers (the HTTP API) wraps them in: ``<token>.<HMAC-SHA256 tag>`` over the
  token and a scope (who asked, for which listing). ``open`` refuses a token it
  did not seal for that scope, forged or changed, with :class:`BadPageToken`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from psycopg import sql
from pydantic import SecretStr

from runwire.contract.limits import id_problem
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
    """The sort time and key in ``token``; :class:`BadPageToken` when it holds none."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        at_text, key = json.loads(raw)
        at = datetime.fromisoformat(at_text)
    except (ValueError, TypeError, binascii.Error) as e:
        raise BadPageToken(f"not a page token: {token!r:.60}") from e
    if at.tzinfo is None or not isinstance(key, str) or id_problem(key) is not None:
        raise BadPageToken(f"not a page token: {token!r:.60}")
    return at, key


class PageTokenSigner:
    """Seals page tokens with an HMAC key so that only tokens it handed out open.

    Every process that must open another's tokens (API instances behind one
    address) needs the same ``secret``; :meth:`random` makes one for a single
    process. The ``scope`` given to :meth:`seal` must be given again to
    :meth:`open` (e.g. the caller's user id and the listing's path), so a
    token is only good where it was handed out.
    """

    TAG_BYTES = 16

    def __init__(self, secret: bytes | str) -> None:
        key = secret.encode() if isinstance(secret, str) else secret
        if len(key) < 16:
            raise ValueError("a page-token secret needs at least 16 bytes")
        self._key = key

    @classmethod
    def of(cls, secret: SecretStr | None) -> PageTokenSigner:
        """A signer with ``secret`` (shared by every API instance), else a random one."""
        return cls(secret.get_secret_value()) if secret is not None else cls.random()

    @classmethod
    def random(cls) -> PageTokenSigner:
        return cls(secrets.token_bytes(32))

    def _tag(self, token: str, scope: str) -> bytes:
        message = b"runwire-page-token\x00" + scope.encode() + b"\x00" + token.encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()[: self.TAG_BYTES]

    def seal(self, token: str, scope: str = "") -> str:
        tag = base64.urlsafe_b64encode(self._tag(token, scope)).decode().rstrip("=")
        return f"{token}.{tag}"

    def open(self, sealed: str, scope: str = "") -> str:
        """The token inside ``sealed``; :class:`BadPageToken` unless :meth:`seal` made it
        for ``scope`` with this key."""
        token, dot, tag_text = sealed.rpartition(".")
        try:
            tag = base64.urlsafe_b64decode(tag_text + "=" * (-len(tag_text) % 4))
        except (ValueError, binascii.Error):
            tag = b""
        # The tag is compared even for a token without one: the same work either way.
        good = hmac.compare_digest(tag, self._tag(token, scope))
        if not dot or not good:
            raise BadPageToken(
                f"{sealed!r:.60} is not a page token this API handed out for this listing"
            )
        return token


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
