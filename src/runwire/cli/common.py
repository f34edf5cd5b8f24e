"""What every command shares: errors become one line and a non-zero exit."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer

from runwire.errors import RunwireError


@contextlib.contextmanager
def fail_on_runwire_error() -> Iterator[None]:
    """Turn a RunwireError into one line on stderr and exit code 1."""
    try:
        yield
    except RunwireError as e:
        typer.secho(f"runwire: error: {e}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
