"""``runwire runs tree RUN_ID``: a run and the child runs it started (agents as tools).

One line per run, indented by depth: run id, agent, status / phase. ``--json``
prints ``[{"depth", "run"}]`` for scripts. Read from the run-status projection.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from runwire.cli.common import ADMIN_HELP, fail_on_runwire_error, settings_for

console = Console(highlight=False)


async def _tree(run_id: str, admin: bool) -> list[tuple[int, dict[str, Any]]]:
    from runwire.projections.runs.reader import RunStore

    async with await RunStore.connect(settings_for(admin)) as store:
        return [(depth, run.as_dict()) for depth, run in await store.tree(run_id)]


def tree(
    run_id: str = typer.Argument(..., help="The root run."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    admin: bool = typer.Option(False, "--admin", help=ADMIN_HELP),
) -> None:
    """A run and its child runs (started by agents called as tools), as a tree."""
    with fail_on_runwire_error():
        rows = asyncio.run(_tree(run_id, admin))
    if as_json:
        print(json.dumps([{"depth": d, "run": r} for d, r in rows], default=str, indent=2))
        return
    for depth, run in rows:
        phase = f"/{run['phase']}" if run["phase"] and run["phase"] != run["status"] else ""
        console.print(
            f"{'  ' * depth}{escape(run['run_id'])}  {escape(run['agent_id'] or '-')}  "
            f"{run['status']}{phase}"
        )


def add_commands(group: typer.Typer) -> None:
    group.command("tree")(tree)
