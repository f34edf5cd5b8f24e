"""``runwire projections status | migrate | rebuild NAME``: positions, lag, stores, fresh copies."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from runwire.cli.common import fail_on_runwire_error
from runwire.settings import Settings

app = typer.Typer(help="Read models: lag per partition, rebuilds.", no_args_is_help=True)
console = Console()


async def _status(names: list[str]) -> list[dict[str, Any]]:
    from runwire.projections.catalog import opener
    from runwire.projections.runtime.lag import projection_lag
    from runwire.projections.runtime.pg_projection import PostgresProjection

    settings = Settings()
    out: list[dict[str, Any]] = []
    for name in names:
        async with opener(name)(settings) as projection:
            lag = await projection_lag(projection, settings)
            entry = lag.as_dict()
            if isinstance(projection, PostgresProjection):
                state = await projection.generations()
                entry["live_generation"] = state.live
                entry["building_generation"] = state.building
            out.append(entry)
    return out


@app.command()
def status(
    name: list[str] = typer.Argument(None, help="Projections to show (default: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Each projection's stored position against the log end, per partition."""
    from runwire.projections.catalog import CATALOG

    names = name or sorted(CATALOG)
    with fail_on_runwire_error():
        report = asyncio.run(_status(names))
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    for entry in report:
        live = entry.get("live_generation")
        title = f"{entry['name']}  lag {entry['lag']}  group {entry['group']}"
        if live is not None:
            title += f"  live g{live}"
        if entry.get("building_generation"):
            title += f"  building g{entry['building_generation']}"
        table = Table(title=title, title_justify="left")
        for column in ("topic", "partition", "position", "end", "lag", "committed (hint)"):
            table.add_column(column, justify="right" if column != "topic" else "left")
        for p in entry["partitions"]:
            table.add_row(
                p["topic"],
                str(p["partition"]),
                str(p["position"]),
                str(p["end"]),
                str(p["lag"]),
                "-" if p["committed"] is None else str(p["committed"]),
            )
        console.print(table)


async def _migrate(names: list[str]) -> list[str]:
    from runwire.projections.catalog import opener
    from runwire.projections.runtime.pg_projection import PostgresProjection

    settings = Settings()
    done: list[str] = []
    for name in names:
        # Opening a projection prepares its store (migrations under an advisory lock).
        async with opener(name)(settings) as projection:
            if isinstance(projection, PostgresProjection):
                state = await projection.generations()
                done.append(f"{name}: live copy g{state.live} up to date")
            else:
                done.append(f"{name}: nothing to migrate")
    return done


@app.command()
def migrate(
    name: list[str] = typer.Argument(None, help="Projections to prepare (default: all)."),
) -> None:
    """Create or upgrade each projection's store, then exit.

    Every projector does the same when it starts; run this once before the
    services (docker-compose's ``migrate`` job) so that readers such as the
    API find their tables before the first projector is up.
    """
    from runwire.projections.catalog import CATALOG

    names = name or sorted(CATALOG)
    with fail_on_runwire_error():
        for line in asyncio.run(_migrate(names)):
            console.print(line)


async def _rebuild(name: str, restart: bool, show: bool) -> dict[str, Any]:
    from runwire.projections.catalog import opener
    from runwire.projections.runtime.protocol import Rebuildable
    from runwire.projections.runtime.rebuild import RebuildProgress, rebuild
    from runwire.projections.runtime.tuning import tune_for_rebuild

    settings = Settings()
    async with opener(name)(settings) as projection:
        tune_for_rebuild()
        if not isinstance(projection, Rebuildable):
            raise typer.BadParameter(f"projection {name!r} cannot be rebuilt")
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>9.0f} events/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not show,
        )
        task: TaskID | None = None

        def on_progress(p: RebuildProgress) -> None:
            nonlocal task
            if task is None:
                task = progress.add_task(f"{name} -> g{p.generation}", total=p.total, rate=0.0)
            progress.update(task, completed=p.done, total=p.total, rate=p.rate)
            if p.switched:
                progress.update(task, description=f"{name} -> g{p.generation} (live)")

        with progress:
            report = await rebuild(projection, settings, restart=restart, on_progress=on_progress)
    return {
        "projection": report.projection,
        "generation": report.generation,
        "records": report.records,
        "seconds": round(report.seconds, 3),
        "events_per_second": round(report.rate, 1),
        "switch_attempts": report.switch_attempts,
        "applied": report.applied,
        "duplicates": report.duplicates,
        "dead_letters": report.dead_letters,
    }


@app.command()
def rebuild(
    name: str = typer.Argument(..., help="Projection to rebuild (runs, sessions, ...)."),
    restart: bool = typer.Option(
        False, "--restart", help="Discard an interrupted rebuild instead of resuming it."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (no bar)."),
) -> None:
    """Build a fresh copy from offset 0 beside the live one, then switch readers to it."""
    with fail_on_runwire_error():
        report = asyncio.run(_rebuild(name, restart, show=not as_json))
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        console.print(
            f"{name}: g{report['generation']} is live — {report['records']} records in "
            f"{report['seconds']:.1f}s ({report['events_per_second']:.0f}/s), "
            f"{report['dead_letters']} dead letters"
        )
