"""``runwire runs list | show``: runs as the run-status projection sees them.

The ``runs`` group is shared with other commands (``runwire runs cancel``):
:func:`add_commands` adds these to it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import typer

from runwire.cli import listing
from runwire.cli.common import ADMIN_HELP, fail_on_runwire_error, settings_for

_COLUMNS: list[listing.Column] = [
    ("run", listing.field("run_id")),
    ("session", listing.field("session_id")),
    ("status", listing.field("status")),
    ("phase", listing.field("phase")),
    ("started", listing.timestamp("started_at")),
    ("msgs", listing.field("message_count")),
    ("tools", listing.field("tool_call_count")),
    ("errors", listing.field("tool_error_count")),
]


async def _list(filters: dict[str, Any], admin: bool) -> dict[str, Any]:
    from runwire.projections.runs.reader import RunStore

    async with await RunStore.connect(settings_for(admin)) as store:
        page = await store.list(**filters)
    return {"runs": [r.as_dict() for r in page.items], "next_page": page.next_page}


async def _show(run_id: str, admin: bool) -> dict[str, Any]:
    from runwire.projections.runs.reader import RunStore

    async with await RunStore.connect(settings_for(admin)) as store:
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
    admin: bool = typer.Option(False, "--admin", help=ADMIN_HELP),
) -> None:
    """Runs, newest first, from the run-status projection."""
    with fail_on_runwire_error():
        filters = {
            "session_id": session,
            "status": status,
            "labels": listing.parse_labels(label),
            "since": listing.parse_time(since, "--since"),
            "until": listing.parse_time(until, "--until"),
            "limit": limit,
            "page": page,
            "oldest_first": oldest_first,
        }
        result = asyncio.run(_list(filters, admin))
    listing.print_page(result, "runs", _COLUMNS, as_json)


def show_run(
    run_id: str = typer.Argument(..., help="The run's id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    admin: bool = typer.Option(False, "--admin", help=ADMIN_HELP),
) -> None:
    """One run's row: ids, status, counts, usage, last error, where it lies in the log."""
    with fail_on_runwire_error():
        run = asyncio.run(_show(run_id, admin))
    listing.print_row(run, f"run {run_id}", ("run_id",), as_json)


def add_commands(group: typer.Typer) -> None:
    """Add ``list`` and ``show`` to the ``runwire runs`` group."""
    group.command("list")(list_runs)
    group.command("show")(show_run)
