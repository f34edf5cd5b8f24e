"""``runwire runs approvals | approve | deny``: a person's decisions on held tool calls.

- ``approvals RUN_ID`` lists the run's tool calls waiting for a decision
  (read from the log: no projection needed).
- ``approve RUN_ID TOOL_USE_ID`` lets the call run; ``deny RUN_ID
  TOOL_USE_ID --reason ...`` answers it with an error result the model reads.
  ``--by`` names who decided (default: ``$USER``). A call that is not waiting
  is refused with the ones that are.

:func:`add_commands` adds these to the shared ``runs`` group.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Callable

import typer
from rich.console import Console
from rich.markup import escape

from runwire.cli.common import fail_on_runwire_error
from runwire.client import Client
from runwire.log import Position
from runwire.settings import Settings

console = Console(highlight=False)


async def _approvals(run_id: str) -> dict[str, str]:
    async with Client(Settings()) as rw:
        return await rw.approvals(run_id)


async def _decide(
    run_id: str, tool_use_id: str, approved: bool, reason: str | None, by: str | None
) -> Position:
    async with Client(Settings()) as rw:
        return await rw.decide(run_id, tool_use_id, approved=approved, reason=reason, decided_by=by)


def _who(by: str | None) -> str | None:
    if by:
        return by
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None


def approvals(run_id: str = typer.Argument(..., help="The run.")) -> None:
    """List the run's tool calls waiting for a person's approval."""
    with fail_on_runwire_error():
        held = asyncio.run(_approvals(run_id))
    if not held:
        console.print(f"run {run_id} holds no tool call for approval")
    for tool_use_id, name in held.items():
        console.print(f"{escape(tool_use_id)}  {escape(name)}")


def _command(approved: bool) -> Callable[..., None]:
    verb = "approved" if approved else "denied"

    def decide(
        run_id: str = typer.Argument(..., help="The run."),
        tool_use_id: str = typer.Argument(..., help="The held tool call (see `runs approvals`)."),
        reason: str | None = typer.Option(None, help="Why (the model reads a denial's)."),
        by: str | None = typer.Option(None, "--by", help="Who decides (default: $USER)."),
    ) -> None:
        with fail_on_runwire_error():
            position = asyncio.run(_decide(run_id, tool_use_id, approved, reason, _who(by)))
        console.print(f"{verb} {tool_use_id} of run {run_id} (offset {position.offset})")

    decide.__doc__ = (
        "Approve a held tool call: the tool runs."
        if approved
        else "Deny a held tool call: the model gets an error result saying so."
    )
    return decide


def add_commands(group: typer.Typer) -> None:
    group.command("approvals")(approvals)
    group.command("approve")(_command(True))
    group.command("deny")(_command(False))
