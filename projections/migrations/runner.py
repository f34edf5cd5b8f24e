"""Ordered SQL migrations with a version table, applied under an advisory lock.

Contract:
- A migration set is a package holding files ``NNNN_description.sql``; they
  are applied in version order, each exactly once, each in the caller's
  transaction together with its row in ``runwire_schema_migrations``.
- Projection sets are templates: ``{{gen}}`` becomes the copy's tag (``g1``)
  and versions are recorded per copy (scope ``runs@g1``). A rebuild's fresh
  copy gets every migration, the live copy only the ones it lacks.
- Safe to run twice, and concurrently: :func:`migration_lock` takes a
  transaction-scoped advisory lock per schema before anything is read, so a
  second process waits, then finds nothing left to do.
- A file changed after it was applied is refused (checksum), naming it: add
  a new migration instead.
- Everything goes into the connection's current schema (the first entry of
  ``search_path``), which is created when missing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from psycopg import AsyncConnection, sql

from runwire.errors import ConfigurationError

_FILE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")

VERSION_TABLE = "runwire_schema_migrations"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    template: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.template.encode()).hexdigest()[:16]

    def render(self, replacements: Mapping[str, str]) -> str:
        text = self.template
        for key, value in replacements.items():
            text = text.replace("{{" + key + "}}", value)
        return text


def load_migrations(package: str) -> list[Migration]:
    """The migrations in ``package`` (e.g. ``runwire.projections.migrations.runs``), in order."""
    found: list[Migration] = []
    for entry in resources.files(package).iterdir():
        match = _FILE.fullmatch(entry.name)
        if match is None:
            continue
        found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ConfigurationError(f"migrations in {package} reuse a version number: {versions}")
    return found


def load_sql(package: str, name: str) -> str:
    """A non-migration SQL file of a package (e.g. the ``view.sql`` template)."""
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


async def migration_lock(conn: AsyncConnection[Any]) -> None:
    """Serialise schema changes in this schema until the transaction ends.

    Creates the current schema when ``search_path`` names one that does not
    exist yet (inside the lock, so two processes cannot race on it).
    """
    cur = await conn.execute("SELECT current_schema(), current_setting('search_path')")
    row = await cur.fetchone()
    assert row is not None
    schema, search_path = row
    key = f"runwire-migrations/{schema or search_path}"
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
    if schema is None:
        first = search_path.split(",")[0].strip().strip('"')
        if not first or first.startswith("$"):
            raise ConfigurationError(
                f"no schema to create tables in (search_path={search_path!r}); "
                "set it in RUNWIRE_POSTGRES_DSN with options=-csearch_path=<schema>"
            )
        await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(first)))
    await conn.execute(
        f"""CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (
                scope      text NOT NULL,
                version    integer NOT NULL,
                name       text NOT NULL,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (scope, version)
            )"""
    )


async def apply_migrations(
    conn: AsyncConnection[Any],
    scope: str,
    migrations: Sequence[Migration],
    replacements: Mapping[str, str] | None = None,
) -> list[Migration]:
    """Apply the migrations of ``scope`` not applied yet; returns those applied.

    Call inside a transaction after :func:`migration_lock`.
    """
    cur = await conn.execute(
        f"SELECT version, name, checksum FROM {VERSION_TABLE} WHERE scope = %s", (scope,)
    )
    done = {version: (name, checksum) for version, name, checksum in await cur.fetchall()}
    applied: list[Migration] = []
    for migration in migrations:
        if migration.version in done:
            _, checksum = done[migration.version]
            if checksum != migration.checksum:
                raise ConfigurationError(
                    f"migration {migration.version:04d}_{migration.name}.sql of {scope} changed "
                    f"after it was applied (checksum {checksum} -> {migration.checksum}); "
                    "add a new migration instead of editing an applied one"
                )
            continue
        text = migration.render(replacements or {})
        await conn.execute(text.encode())
        await conn.execute(
            f"INSERT INTO {VERSION_TABLE} (scope, version, name, checksum) VALUES (%s, %s, %s, %s)",
            (scope, migration.version, migration.name, migration.checksum),
        )
        applied.append(migration)
    return applied


RUNTIME_MIGRATIONS = "runwire.projections.migrations.runtime"


async def migrate_runtime(conn: AsyncConnection[Any]) -> list[Migration]:
    """Apply the runtime's own migrations (call inside a transaction, after the lock)."""
    return await apply_migrations(conn, "runtime", load_migrations(RUNTIME_MIGRATIONS))
