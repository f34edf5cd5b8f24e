"""``runwire sessions export | import | expire | delete | erase | rotate-kek``: operator tasks on sessions.

They act for the operator (every session is reachable: the admin's
settings, ``operator_settings``; in a tenant process, its tenant's) through
:mod:`runwire.sessions.admin`, and wait for the projections like the Session
API does, so the projectors must be running (``runwire serve projector-...``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import typer

from runwire.cli.common import fail_on_runwire_error, operator_settings
from runwire.settings import Settings

T = TypeVar("T")


def _with_backend(work: Callable[[Any], Awaitable[T]]) -> T:
    async def main() -> T:
        from runwire.sessions.log_backend import LogBackend

        async with LogBackend(operator_settings()) as backend:
            return await work(backend)

    return asyncio.run(main())


def export(
    session_id: str = typer.Argument(..., help="The session to export."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here, not to stdout."),
) -> None:
    """Print a session as a versioned JSON document (import it with `runwire sessions import`)."""
    from runwire.sessions.admin import export_any

    with fail_on_runwire_error():
        doc = _with_backend(lambda b: export_any(b, session_id))
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text + "\n")
        typer.echo(f"exported {session_id} ({len(doc['runs'])} runs) to {output}", err=True)


def import_(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="An export document, or an Agents-SDK SQLite file."
    ),
    user: str | None = typer.Option(None, "--user", "-u", help="Owner (default: the document's)."),
    tenant: str | None = typer.Option(None, help="Tenant (default: the document's)."),
    keep_ids: bool = typer.Option(False, "--keep-ids", help="Fail instead of taking new ids."),
    skip_unsupported: bool = typer.Option(
        False, "--skip-unsupported", help="SQLite: leave out items runwire cannot keep."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Recreate sessions from a file; importing the same file again changes nothing."""
    from runwire.sessions.admin import import_file

    with fail_on_runwire_error():
        results = _with_backend(
            lambda b: import_file(
                b,
                file,
                user_id=user,
                tenant=tenant,
                keep_ids=keep_ids,
                skip_unsupported=skip_unsupported,
            )
        )
    if as_json:
        typer.echo(json.dumps([asdict(r) for r in results], indent=2))
        return
    for r in results:
        what = "imported" if r.created else "already imported"
        renamed = " (new id: the original was taken)" if r.renamed else ""
        skipped = f", skipped {r.skipped}" if r.skipped else ""
        typer.echo(f"{what} {r.session_id}{renamed}: {r.runs} runs, {r.messages} messages{skipped}")


def expire(
    idle: str = typer.Option(..., "--idle", help="End sessions idle this long: 30d, 12h, 90m."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list them."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """End active sessions idle longer than --idle (they stay readable; nothing is deleted)."""
    from runwire.sessions.admin import expire_idle, parse_duration

    with fail_on_runwire_error():
        span = parse_duration(idle, "--idle")
        ended = _with_backend(lambda b: expire_idle(b, span, dry_run=dry_run))
    if as_json:
        typer.echo(json.dumps({"ended": ended, "dry_run": dry_run}))
        return
    verb = "would end" if dry_run else "ended"
    typer.echo(f"{verb} {len(ended)} session(s) idle for more than {idle}")
    for session_id in ended:
        typer.echo(f"  {session_id}")


def delete(
    session_id: str = typer.Argument(..., help="The session to erase."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask."),
) -> None:
    """Erase a session: row, cached transcripts, session memory (what stays: docs/sessions.md)."""
    from runwire.sessions.admin import delete_any

    if not yes:
        typer.confirm(f"Erase session {session_id}?", abort=True)
    with fail_on_runwire_error():
        _with_backend(lambda b: delete_any(b, session_id))
    typer.echo(f"deleted {session_id}")


def erase(
    session_id: str = typer.Argument(..., help="The session to erase for good."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask."),
) -> None:
    """Erase a session for good: delete it and destroy its data keys (sealing on).

    Its events on the log can no longer be read by anyone; the erasure receipt
    (an event) names the destroyed key ids. Running it again is harmless.
    """
    from runwire.sessions.admin import erase_any

    if not yes:
        typer.confirm(f"Erase session {session_id} for good (its keys are destroyed)?", abort=True)
    with fail_on_runwire_error():
        receipt = _with_backend(lambda b: erase_any(b, session_id))
    typer.echo(
        json.dumps(
            {
                "erased": receipt.session_id,
                "receipt_event_id": receipt.event_id,
                "destroyed_key_ids": list(receipt.key_ids),
            }
        )
    )


def rotate_kek() -> None:
    """Make a new key-encryption key current and re-wrap every live data key with it.

    The log is not rewritten: the data keys (and so every sealed record) stay
    the same; only how they are stored changes (docs/sealing.md). Back up the
    key file afterwards.
    """
    from runwire.contract.sealing.kek import KeyFile
    from runwire.contract.sealing.postgres import PostgresKeyStore

    settings = Settings()
    path = settings.sealing_key_file or settings.home / "sealing-keys.json"
    with fail_on_runwire_error():
        kek = KeyFile(path)
        old = kek.current_id
        new = kek.rotate()
        store = PostgresKeyStore(settings.postgres_dsn, kek, cache_seconds=0)
        try:
            count = store.rewrap()
        finally:
            store.close()
    typer.echo(json.dumps({"key_file": str(path), "from": old, "to": new, "rewrapped": count}))


def register(app: typer.Typer) -> None:
    """Add these commands to the ``runwire sessions`` app."""
    app.command("export")(export)
    app.command("import")(import_)
    app.command("expire")(expire)
    app.command("delete")(delete)
    app.command("erase")(erase)
    app.command("rotate-kek")(rotate_kek)
