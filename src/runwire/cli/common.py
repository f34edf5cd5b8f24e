"""What every command shares: errors become one line and a non-zero exit; ``--admin``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer

from runwire.errors import RunwireError
from runwire.settings import Settings

ADMIN_HELP = (
    "Read every tenant's rows (an operator). Without it: the rows of this "
    "process's tenant (RUNWIRE_TENANT), or those without a tenant."
)
"""The help of the ``--admin`` option of commands that read the projections."""


def settings_for(admin: bool) -> Settings:
    """The process's settings; with ``admin``, reading every tenant's rows
    (refused in a tenant process: docs/tenants.md)."""
    settings = Settings()
    return settings.model_copy(update={"admin": True}) if admin else settings


def operator_settings() -> Settings:
    """Settings of an operator's task that reaches every session: the admin's,
    or in a tenant process its tenant's."""
    settings = Settings()
    return settings if settings.tenant is not None else settings.model_copy(update={"admin": True})


@contextlib.contextmanager
def fail_on_runwire_error() -> Iterator[None]:
    """Turn a RunwireError into one line on stderr and exit code 1."""
    try:
        yield
    except RunwireError as e:
        typer.secho(f"runwire: error: {e}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
