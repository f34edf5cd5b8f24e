"""``runwire users erase USER``: erase a user for good (operator; sealing on).

- Erases every session of the user in its tenant, its user-scope memory and
  every key of it and its sessions (:func:`runwire.sessions.admin.erase_user`),
  then prints the receipt (the ``user_erased`` event): JSON with ``--json``,
  a few lines otherwise. Running it again is harmless and prints the same.
- Waits for the projections like the Session API does: the projectors must
  be running (``runwire serve projector-...``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer

from runwire.cli.common import fail_on_runwire_error, operator_settings

app = typer.Typer(help="Operator tasks on users.", no_args_is_help=True)


@app.command("erase")
def erase(
    user: str = typer.Argument(..., help="The user to erase for good."),
    tenant: str | None = typer.Option(None, "--tenant", "-t", help="The user's tenant."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask."),
    as_json: bool = typer.Option(False, "--json", help="Print the receipt as JSON."),
) -> None:
    """Erase a user for good: its sessions, its user memory, and their keys.

    Nothing of the user on the log can be read by anyone afterwards, and the
    user can write nothing again; the receipt (an event) names the destroyed
    key ids and the sessions.
    """
    from runwire.sessions.admin import erase_user
    from runwire.sessions.log_backend import LogBackend

    who = f"{user} (tenant {tenant})" if tenant else user
    if not yes:
        typer.confirm(f"Erase user {who} for good (its keys are destroyed)?", abort=True)

    async def main() -> dict[str, Any]:
        # The operator reaches every tenant's users (in a tenant process, its own).
        async with LogBackend(operator_settings()) as backend:
            return (await erase_user(backend, user, tenant)).as_json()

    with fail_on_runwire_error():
        receipt = asyncio.run(main())
    if as_json:
        typer.echo(json.dumps(receipt))
        return
    typer.echo(f"erased user {who}: receipt {receipt['receipt_event_id']}")
    typer.echo(f"  sessions: {', '.join(receipt['session_ids']) or '-'}")
    typer.echo(f"  destroyed keys: {', '.join(receipt['destroyed_key_ids']) or '-'}")
