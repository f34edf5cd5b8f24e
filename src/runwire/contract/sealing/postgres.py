"""The key store in Postgres: one row per data key, wrapped; destroying clears it.

Contract:
- Table ``runwire_data_keys`` (made on first use in the connection's current
  schema): ``key_id`` (primary key), ``session_id`` (the subject: a session's
  :func:`~runwire.contract.sealing.protocol.session_subject`,
  or for ``scope`` ``user`` a user subject), ``kek_id``, ``wrapped`` (NULL
  once destroyed), ``created_at``, ``destroyed_at``, ``scope`` (``session``
  or ``user``), ``user_subject`` (a session key's user). A destroyed row is
  kept (without its key): it tells "erased" from "never existed" (tamper).
- Blocking calls (the codec is synchronous) on one connection, made again
  after a failure; a driver failure to reach the database is
  ``KeyStoreUnavailableError`` (retriable).
- Keys read are cached for ``cache_seconds``: a process that read a key before
  an erasure elsewhere may read it until then (the projections have erased the
  session by then already); destroyed keys are cached for good.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from runwire.contract.sealing.errors import (
    ErasedError,
    KeyStoreUnavailableError,
    SessionErasedError,
    UnknownKeyError,
    UserErasedError,
)
from runwire.contract.sealing.inmem import erased_user_marker, new_key_id, new_user_key_id
from runwire.contract.sealing.protocol import KeyEncryptionKey, UserKeys, session_of

T = TypeVar("T")

_DDL = """
CREATE TABLE IF NOT EXISTS runwire_data_keys (
    key_id text PRIMARY KEY,
    session_id text NOT NULL,
    kek_id text NOT NULL,
    wrapped bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    destroyed_at timestamptz
);
CREATE INDEX IF NOT EXISTS runwire_data_keys_session ON runwire_data_keys (session_id);
-- User keys and the user of a session's keys (erasure by user); older tables gain them.
ALTER TABLE runwire_data_keys
    ADD COLUMN IF NOT EXISTS scope text NOT NULL DEFAULT 'session',
    ADD COLUMN IF NOT EXISTS user_subject text;
CREATE INDEX IF NOT EXISTS runwire_data_keys_user ON runwire_data_keys (user_subject)
    WHERE user_subject IS NOT NULL;
"""

_ERASED = b""
_MAX_CACHED = 100_000
"""Keys held per process at most; past it the caches start again (a bound, not an LRU)."""


def _lock_user(conn: psycopg.Connection[Any], subject: str) -> None:
    """Hold the user's lock to the end of the transaction (making its keys vs erasing it)."""
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", ("runwire-user/" + subject,)
    )


class PostgresKeyStore:
    """A :class:`~runwire.contract.sealing.protocol.KeyStore` in Postgres (see the contract)."""

    def __init__(self, dsn: str, kek: KeyEncryptionKey, *, cache_seconds: float = 60.0) -> None:
        self._dsn = dsn
        self._kek = kek
        self._ttl = cache_seconds
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        self._keys: dict[str, tuple[bytes, float]] = {}
        self._writing: dict[str, tuple[str, bytes, float]] = {}

    def __str__(self) -> str:
        return "the key store (Postgres)"

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=5)
                    self._ensure(conn)
                    self._conn = conn
                return work(self._conn)
            except psycopg.OperationalError as e:
                self.close()
                raise KeyStoreUnavailableError(f"{self} cannot be reached: {e}") from e

    @staticmethod
    def _ensure(conn: psycopg.Connection[Any]) -> None:
        row = conn.execute("SELECT current_schema(), current_setting('search_path')").fetchone()
        assert row is not None
        if row[0] is None:  # the search_path names a schema not made yet
            first = row[1].split(",")[0].strip()
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{first.strip(chr(34))}"')
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('runwire_data_keys'))")
            conn.execute(_DDL)

    def key_for_writing(self, session_id: str, user: str | None = None) -> tuple[str, bytes]:
        return self._for_writing("session", session_id, user)

    def key_for_user(self, subject: str) -> tuple[str, bytes]:
        return self._for_writing("user", subject, None)

    def _for_writing(self, scope: str, subject: str, user: str | None) -> tuple[str, bytes]:
        cached = f"{scope}\x00{subject}"
        known = self._writing.get(cached)
        if known is not None and time.monotonic() - known[2] < self._ttl:
            return known[0], known[1]
        refused = (
            SessionErasedError(session_of(subject))
            if scope == "session"
            else UserErasedError(subject)
        )

        def find_or_make(conn: psycopg.Connection[Any]) -> tuple[str, str, bytes]:
            rows = conn.execute(
                "SELECT key_id, kek_id, wrapped FROM runwire_data_keys "
                "WHERE session_id = %s AND scope = %s",
                (subject, scope),
            ).fetchall()
            if any(r[2] is None for r in rows):
                raise refused
            if rows:
                return rows[0][0], rows[0][1], bytes(rows[0][2])
            key_id = new_key_id(subject) if scope == "session" else new_user_key_id(subject)
            kek_id, wrapped = self._kek.wrap(key_id, AESGCM.generate_key(bit_length=256))
            # Not when the subject, or the user a session is made by, was erased meanwhile;
            # the user's lock orders this against a concurrent erase_user (which takes it).
            owner = subject if scope == "user" else user
            with conn.transaction():
                if owner is not None:
                    _lock_user(conn, owner)
                made = conn.execute(
                    "INSERT INTO runwire_data_keys "
                    "(key_id, session_id, kek_id, wrapped, scope, user_subject) "
                    "SELECT %s, %s, %s, %s, %s, %s WHERE NOT EXISTS (SELECT 1 FROM "
                    "runwire_data_keys WHERE ((session_id = %s AND scope = %s) OR "
                    "(session_id = %s AND scope = 'user')) AND wrapped IS NULL) RETURNING key_id",
                    (key_id, subject, kek_id, wrapped, scope, user, subject, scope, user),
                ).fetchone()
            if made is None:
                if (
                    user is not None
                    and conn.execute(
                        "SELECT 1 FROM runwire_data_keys WHERE session_id = %s AND scope = 'user' "
                        "AND wrapped IS NULL",
                        (user,),
                    ).fetchone()
                ):
                    raise UserErasedError(user)
                raise refused
            return key_id, kek_id, wrapped

        key_id, kek_id, wrapped = self._run(find_or_make)
        data_key = self._kek.unwrap(kek_id, key_id, wrapped)
        now = time.monotonic()
        self._bound()
        self._writing[cached] = (key_id, data_key, now)
        self._keys[key_id] = (data_key, now)
        return key_id, data_key

    def key(self, key_id: str) -> bytes:
        known = self._keys.get(key_id)
        if known is not None:
            if known[0] == _ERASED:
                raise ErasedError(key_id)
            if time.monotonic() - known[1] < self._ttl:
                return known[0]
        row = self._run(
            lambda conn: conn.execute(
                "SELECT kek_id, wrapped FROM runwire_data_keys WHERE key_id = %s", (key_id,)
            ).fetchone()
        )
        if row is None:
            raise UnknownKeyError(f"{self} has no data key {key_id!r}")
        if row[1] is None:
            self._keys[key_id] = (_ERASED, time.monotonic())
            raise ErasedError(key_id)
        data_key = self._kek.unwrap(row[0], key_id, bytes(row[1]))
        self._bound()
        self._keys[key_id] = (data_key, time.monotonic())
        return data_key

    def _bound(self) -> None:
        if len(self._keys) >= _MAX_CACHED:
            self._keys.clear()
        if len(self._writing) >= _MAX_CACHED:
            self._writing.clear()

    def destroy(self, session_id: str) -> list[str]:
        def destroy(conn: psycopg.Connection[Any]) -> list[str]:
            with conn.transaction():
                # A tenant's subject, and the bare id: keys made before sessions' keys were
                # their tenant's, or by a writer without a tenant, hold its records too.
                rows = conn.execute(
                    "UPDATE runwire_data_keys SET wrapped = NULL, destroyed_at = now() "
                    "WHERE session_id IN (%s, %s) AND scope = 'session' AND wrapped IS NOT NULL "
                    "RETURNING key_id",
                    (session_id, session_of(session_id)),
                ).fetchall()
                # Never written: a destroyed row keeps the session unwritable.
                conn.execute(
                    "INSERT INTO runwire_data_keys (key_id, session_id, kek_id, destroyed_at) "
                    "SELECT %s, %s, %s, now() WHERE NOT EXISTS (SELECT 1 FROM "
                    "runwire_data_keys WHERE session_id = %s AND scope = 'session')",
                    (new_key_id(session_id), session_id, self._kek.current_id, session_id),
                )
            return [r[0] for r in rows]

        destroyed = self._run(destroy)
        self._forget([session_id], destroyed)
        return destroyed

    def _forget(self, sessions: list[str], destroyed: list[str]) -> None:
        now = time.monotonic()
        for session_id in sessions:
            self._writing.pop(f"session\x00{session_id}", None)
        for key_id in destroyed:
            self._keys[key_id] = (_ERASED, now)

    def erase_user(self, subject: str) -> UserKeys:
        marker = erased_user_marker(subject)

        def erase(conn: psycopg.Connection[Any]) -> list[tuple[str, str, str]]:
            with conn.transaction():
                _lock_user(conn, subject)  # no key of the user is made while this runs
                conn.execute(
                    "UPDATE runwire_data_keys SET wrapped = NULL, destroyed_at = now() "
                    "WHERE ((session_id = %s AND scope = 'user') OR user_subject = %s) "
                    "AND wrapped IS NOT NULL",
                    (subject, subject),
                )
                # No memory yet: a destroyed row keeps the user unwritable.
                conn.execute(
                    "INSERT INTO runwire_data_keys (key_id, session_id, kek_id, destroyed_at, "
                    "scope) SELECT %s, %s, %s, now(), 'user' WHERE NOT EXISTS (SELECT 1 FROM "
                    "runwire_data_keys WHERE session_id = %s AND scope = 'user')",
                    (marker, subject, self._kek.current_id, subject),
                )
                rows = conn.execute(
                    "SELECT key_id, session_id, scope FROM runwire_data_keys "
                    "WHERE ((session_id = %s AND scope = 'user') OR user_subject = %s) "
                    "AND key_id <> %s ORDER BY key_id",
                    (subject, subject, marker),
                ).fetchall()
            return [(r[0], r[1], r[2]) for r in rows]

        rows = self._run(erase)
        subjects = sorted({s for _, s, scope in rows if scope == "session"})
        key_ids = [k for k, _, _ in rows]
        self._writing.pop(f"user\x00{subject}", None)
        self._forget(subjects, key_ids)
        return UserKeys(tuple(key_ids), tuple(sorted({session_of(s) for s in subjects})))

    def rewrap(self) -> int:
        def rewrap(conn: psycopg.Connection[Any]) -> int:
            n = 0
            with conn.transaction():
                rows = conn.execute(
                    "SELECT key_id, kek_id, wrapped FROM runwire_data_keys "
                    "WHERE wrapped IS NOT NULL AND kek_id <> %s FOR UPDATE",
                    (self._kek.current_id,),
                ).fetchall()
                for key_id, kek_id, wrapped in rows:
                    data_key = self._kek.unwrap(kek_id, key_id, bytes(wrapped))
                    new_kek, new_wrapped = self._kek.wrap(key_id, data_key)
                    conn.execute(
                        "UPDATE runwire_data_keys SET kek_id = %s, wrapped = %s WHERE key_id = %s",
                        (new_kek, new_wrapped, key_id),
                    )
                    n += 1
            return n

        return self._run(rewrap)
