"""``runwire runs list | show``: runs as the run-status projection sees them.

The ``runs`` group is shared with other commands (``runwire runs cancel``):
:func:`add_commands` adds these to it.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from runwire.cli.common import fail_on_runwire_error
from runwire.errors import ConfigurationError
from runwire.settings import Settings

console = Console(highlight=False)


def parse_labels(pairs: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` to a dict; a clear error for anything else."""
    labels: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"--label wants KEY=VALUE, got {pair!r}")
        labels[key] = value
    return labels


def parse_time(text: str | None, option: str) -> datetime | None:
    """An ISO 8601 time (a date alone means midnight UTC)."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(f"{option} wants an ISO 8601 time, got {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


async def _list(filters: dict[str, Any]) -> dict[str, Any]:
    from runwire.projections.runs.store import RunStore

    async with await RunStore.connect(Settings()) as store:
        page = await store.list(**filters)
    return {"runs": [r.as_dict() for r in page.items], "next_page": page.next_page}


async def _show(run_id: str) -> dict[str, Any]:
    from runwire.projections.runs.store import RunStore

    async with await RunStore.connect(Settings()) as store:
        return (await store.get(run_id)).as_dict()


def list_runs(
    session: str | None = typer.Option(None, "--session", "-s", help="Only this session's runs."),
    status: str | None = typer.Option(None, help="Only runs in this status."),
    label: list[str] = typer.Option(None, "--label", "-l", help="KEY=VALUE (repeatable)."),
    since: str | None = typer.Option(None, help="Started at or after (ISO 8601)."),
    until: str | None = typer.Option(None, help="Started before (ISO 8601)."),
    limit: int = typer.Option(20, min=1, max=1000, help="Runs per page."),
    page: str | None = typer.Option(None, help="The next_page token of a previous listing."),
    oldest_first: bool = typer.Option(False, "--oldest-first", help="Oldest first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Runs, newest first, from the run-status projection."""
    with fail_on_runwire_error():
        filters = {
            "session_id": session,
            "status": status,
            "labels": parse_labels(label),
            "since": parse_time(since, "--since"),
            "until": parse_time(until, "--until"),
            "limit": limit,
            "page": page,
            "oldest_first": oldest_first,
        }
        result = asyncio.run(_list(filters))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    table = Table()
    for column in ("run", "session", "status", "phase", "started", "msgs", "tools", "errors"):
        table.add_column(column)
    for r in result["runs"]:
        table.add_row(
            r["run_id"],
            r["session_id"] or "",
            r["status"],
            r["phase"] or "",
            r["started_at"][:19],
            str(r["message_count"]),
            str(r["tool_call_count"]),
            str(r["tool_error_count"]),
        )
    console.print(table)
    if result["next_page"]:
        console.print(f"[dim]more: --page {result['next_page']}[/]")


def show_run(
    run_id: str = typer.Argument(..., help="The run's id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """One run's row: ids, status, counts, usage, last error, where it lies in the log."""
    with fail_on_runwire_error():
        run = asyncio.run(_show(run_id))
    if as_json:
        typer.echo(json.dumps(run, indent=2))
        return
    table = Table(show_header=False, title=f"run {run_id}", title_justify="left")
    for key, value in run.items():
        if key != "run_id":
            table.add_row(
                key,
                ""
                if value is None
                else json.dumps(value)
                if isinstance(value, dict | list)
                else str(value),
            )
    console.print(table)


def add_commands(group: typer.Typer) -> None:
    """Add ``list`` and ``show`` to the ``runwire runs`` group."""
    group.command("list")(list_runs)
    group.command("show")(show_run)
