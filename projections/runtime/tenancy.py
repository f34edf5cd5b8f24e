"""Who a Postgres reader reads as: one tenant, under row-level security, or the admin.

Contract:
- A :data:`Scope` is a tenant (a non-empty id), :data:`NO_TENANT` (the rows
  without a tenant: a deployment without tenants) or :data:`ADMIN`.
- :func:`scoped` lends a connection of a pool for one scope. For a tenant it
  is inside a transaction that has taken the role :data:`TENANT_READER_ROLE`
  and set :data:`TENANT_SETTING` to the tenant (both ``LOCAL``: they end with
  the transaction, so a pooled connection never carries them to the next
  borrower); the tables' policies then show only that tenant's rows,
  whatever the query says. For :data:`NO_TENANT` the same, with
  :data:`NO_TENANT_SETTING` ``on`` instead: only rows whose tenant is NULL.
  For :data:`ADMIN` it is the pool's own role (the projectors', which owns
  the tables), which sees every row.
- :func:`scope_of` is the scope a process's readers take by default: the
  tenant it writes as (``settings.tenant``), else :data:`NO_TENANT`. Every
  tenant's rows are read only by asking: ``tenant=ADMIN``, ``admin=True``,
  or a process whose settings say ``admin`` (an operator's command).
- Bad tenants are refused with ``InputError`` naming ``tenant``.

The guard is against wrong queries, not hostile SQL: code that can run any
statement on the connection can also ``RESET ROLE``. A deployment that hands
tenants SQL gives each a login role of its own (docs/tenants.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Final, TypeAlias, final

from runwire.contract import limits
from runwire.errors import InputError
from runwire.projections.runtime.pg import Conn, Pool
from runwire.settings import Settings

TENANT_READER_ROLE: Final = "runwire_tenant_reader"
"""The role row-level security policies name (made by the runtime's migrations)."""

TENANT_SETTING: Final = "runwire.tenant"
"""The setting the policies compare each row's ``tenant`` with."""

NO_TENANT_SETTING: Final = "runwire.no_tenant"
"""The setting (``on``) under which the policies show the rows without a tenant."""


@final
class Admin:
    """The scope of a reader without a tenant: every row (say so with :data:`ADMIN`)."""

    def __repr__(self) -> str:
        return "ADMIN"


ADMIN: Final = Admin()


@final
class NoTenant:
    """The scope of the rows without a tenant (say so with :data:`NO_TENANT`)."""

    def __repr__(self) -> str:
        return "NO_TENANT"


NO_TENANT: Final = NoTenant()

Scope: TypeAlias = str | Admin | NoTenant


def checked(scope: Scope) -> Scope:
    """``scope`` when it is one (see the module contract)."""
    if isinstance(scope, Admin | NoTenant):
        return scope
    return tenant_id(scope, "a tenant id, NO_TENANT or ADMIN")


def tenant_id(value: object, expected: str = "a tenant id") -> str:
    """``value`` when it is a tenant id, else ``InputError`` naming ``tenant``."""
    if not isinstance(value, str):
        raise InputError("tenant", f"must be {expected}, not {type(value).__name__}")
    problem = limits.id_problem(value)
    if problem is not None:
        raise InputError("tenant", problem)
    return value


def scope_of(settings: Settings, *, admin: bool = False) -> Scope:
    """The scope a process's readers take unless told otherwise; ``admin`` (or
    ``settings.admin``, ``RUNWIRE_ADMIN``): every tenant's rows, asked for
    explicitly. A tenant process cannot be the admin."""
    if settings.admin and settings.tenant is not None:
        raise InputError(
            "tenant",
            f"a tenant process (RUNWIRE_TENANT={settings.tenant!r}) cannot read every "
            "tenant (RUNWIRE_ADMIN)",
        )
    if admin or settings.admin:
        return ADMIN
    return NO_TENANT if settings.tenant is None else checked(settings.tenant)


@contextlib.asynccontextmanager
async def scoped(pool: Pool, scope: Scope) -> AsyncIterator[Conn]:
    """A connection of ``pool`` reading as ``scope`` (see the module contract)."""
    async with pool.connection() as conn:
        if isinstance(scope, Admin):
            yield conn
            return
        setting, value = (
            (NO_TENANT_SETTING, "on") if isinstance(scope, NoTenant) else (TENANT_SETTING, scope)
        )
        async with conn.transaction():
            await conn.execute(
                "SELECT set_config('role', %s, true), set_config(%s, %s, true)",
                (TENANT_READER_ROLE, setting, value),
            )
            yield conn
