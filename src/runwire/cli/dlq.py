"""``runwire dlq list | redrive``: what consumers could not decode or apply.

- An operator's commands: the dead-letter topic holds every tenant's records
  (their keys, error messages and bodies), so a tenant process
  (``RUNWIRE_TENANT``) is refused before anything is read or re-published.
"""

from __future__ import annotations

import asyncio
import json

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from runwire.cli.common import fail_on_runwire_error
from runwire.errors import ConfigurationError
from runwire.settings import Settings

app = typer.Typer(
    help="Dead letters: list them, re-publish them after a fix.", no_args_is_help=True
)
console = Console(highlight=False)


def _operator() -> Settings:
    """This process's settings, refused in a tenant process (see the module contract)."""
    settings = Settings()
    if settings.tenant is not None:
        raise ConfigurationError(
            f"runwire dlq reads every tenant's dead letters, not only tenant "
            f"{settings.tenant!r}'s: run it as the operator, without RUNWIRE_TENANT"
        )
    return settings


@app.command("list")
def list_(
    consumer: str | None = typer.Option(None, help="Only this consumer's (e.g. runs, sessions)."),
    reason: str | None = typer.Option(None, help="Only this reason (e.g. bad_magic)."),
    limit: int | None = typer.Option(None, help="At most this many."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Every dead letter with where it came from and why."""
    from runwire.projections.runtime.dead_letters import list_dead_letters

    with fail_on_runwire_error():
        letters = asyncio.run(
            list_dead_letters(_operator(), consumer=consumer, reason=reason, limit=limit)
        )
    if as_json:
        typer.echo(json.dumps([d.as_dict() for d in letters], indent=2))
        return
    table = Table(title=f"{len(letters)} dead letters", title_justify="left")
    for column in ("source", "consumer", "reason", "error", "message"):
        table.add_column(column)
    for d in letters:
        table.add_row(
            f"{d.source_topic}/{d.source_partition}@{d.source_offset}",
            d.consumer,
            d.reason,
            d.error_class,
            escape(d.message[:120]),
        )
    console.print(table)


@app.command()
def redrive(
    consumer: str | None = typer.Option(None, help="Only this consumer's dead letters."),
    reason: str | None = typer.Option(None, help="Only dead letters with this reason."),
    from_start: bool = typer.Option(
        False,
        "--from-start",
        help="Rescan every dead letter, not only those since the last redrive.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count, do not publish."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Re-publish dead letters to their source topics (after fixing what rejected them)."""
    from runwire.projections.runtime.dead_letters import redrive as run_redrive

    with fail_on_runwire_error():
        report = asyncio.run(
            run_redrive(
                _operator(),
                consumer=consumer,
                reason=reason,
                from_start=from_start,
                dry_run=dry_run,
            )
        )
    result = {
        "scanned": report.scanned,
        "redriven": report.redriven,
        "skipped": report.skipped,
        "dry_run": report.dry_run,
    }
    if as_json:
        typer.echo(json.dumps(result))
    else:
        verb = "would re-publish" if dry_run else "re-published"
        console.print(f"{verb} {report.redriven} of {report.scanned} dead letters")
