"""``runwire sessions list | show | fork``: sessions as the session index sees them;
``fork ID --turn N`` (or ``--run RUN --at OFFSET``) makes a fork
(:mod:`runwire.sessions.forks`) and prints its id."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer

from runwire.cli import listing
from runwire.cli.common import ADMIN_HELP, fail_on_runwire_error, settings_for
from runwire.errors import InputError

app = typer.Typer(help="Sessions from the session index.", no_args_is_help=True)

_COLUMNS: list[listing.Column] = [
    ("session", listing.field("session_id")),
    ("user", listing.field("user_id")),
    ("status", listing.field("status")),
    ("runs", listing.field("run_count")),
    ("last run", listing.field("last_run_id")),
    ("last activity", listing.timestamp("last_activity_at")),
]


async def _list(filters: dict[str, Any], admin: bool) -> dict[str, Any]:
    from runwire.projections.sessions.reader import SessionIndex

    async with await SessionIndex.connect(settings_for(admin)) as index:
        page = await index.list(**filters)
    return {"sessions": [s.as_dict() for s in page.items], "next_page": page.next_page}


async def _show(session_id: str, runs: int, admin: bool) -> dict[str, Any]:
    from runwire.projections.runs.reader import RunStore
    from runwire.projections.sessions.reader import SessionIndex

    settings = settings_for(admin)
    async with await SessionIndex.connect(settings) as index:
        session = (await index.get(session_id)).as_dict()
    async with await RunStore.connect(settings) as store:
        page = await store.list(session_id=session_id, limit=runs, oldest_first=True)
    session["runs"] = [
        {k: r.as_dict()[k] for k in ("run_id", "status", "started_at", "ended_at")}
        for r in page.items
    ]
    return session


@app.command("list")
def list_sessions(
    user: str | None = typer.Option(None, "--user", "-u", help="Only this user's sessions."),
    status: str | None = typer.Option(None, help="active | ended."),
    label: list[str] = typer.Option(None, "--label", "-l", help="KEY=VALUE (repeatable)."),
    since: str | None = typer.Option(None, help="Active at or after (ISO 8601)."),
    until: str | None = typer.Option(None, help="Last active before (ISO 8601)."),
    limit: int = typer.Option(20, min=1, max=1000, help="Sessions per page."),
    page: str | None = typer.Option(None, help="The next_page token of a previous listing."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    admin: bool = typer.Option(False, "--admin", help=ADMIN_HELP),
) -> None:
    """Sessions, most recently active first."""
    with fail_on_runwire_error():
        filters = {
            "user_id": user,
            "status": status,
            "labels": listing.parse_labels(label),
            "since": listing.parse_time(since, "--since"),
            "until": listing.parse_time(until, "--until"),
            "limit": limit,
            "page": page,
        }
        result = asyncio.run(_list(filters, admin))
    listing.print_page(result, "sessions", _COLUMNS, as_json)


async def _at_turn(session_id: str, turn: int, admin: bool) -> tuple[dict[str, Any], bytes]:
    from runwire.projections.sessions.reader import SessionIndex
    from runwire.projections.transcripts.reader import TranscriptCache
    from runwire.sessions.forks import history_at
    from runwire.sessions.inmem import info_of

    settings = settings_for(admin)
    async with await SessionIndex.connect(settings) as index:
        info = info_of(await index.get(session_id))  # NotFoundError for an unknown session
    # The session's runs are cached under its tenant's keys.
    async with TranscriptCache(settings, tenant=info.tenant) as cache:
        runs = await cache.visible_runs(session_id)
        past = await history_at(cache.history(), info, runs, turn)
    head = {"session_id": session_id, "turn": turn, "run_ids": past.run_ids}
    return head, past.json


@app.command("show")
def show_session(
    session_id: str = typer.Argument(..., help="The session's id."),
    runs: int = typer.Option(50, help="How many of its runs to list (oldest first)."),
    turn: int | None = typer.Option(
        None, "--turn", help="Its history as of the end of this turn (1 = the first since a clear)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    admin: bool = typer.Option(False, "--admin", help=ADMIN_HELP),
) -> None:
    """One session and its runs; with --turn, its history as of that turn (from the log)."""
    if turn is not None:
        with fail_on_runwire_error():
            head, messages_json = asyncio.run(_at_turn(session_id, turn, admin))
        if as_json:
            # The messages' JSON as the cache writes it: exact numbers, bytes as base64.
            doc = json.dumps(head, ensure_ascii=False)[:-1] + ', "messages": '
            typer.echo(doc + messages_json.decode() + "}")
            return
        messages = json.loads(messages_json)
        listing.console.print(f"session {session_id} as of turn {turn}: {len(messages)} messages")
        for m in messages:
            text = "".join(p.get("text") or "" for p in m["parts"] if p.get("kind") == "text")
            listing.console.print(f"  {m['role']}: {text}")
        return
    with fail_on_runwire_error():
        session = asyncio.run(_show(session_id, runs, admin))
    listing.print_row(session, f"session {session_id}", ("session_id", "runs"), as_json)
    if as_json:
        return
    for r in session["runs"]:
        listing.console.print(f"  {r['started_at'][:19]}  {r['run_id']}  {r['status']}")


_OPTIONS = {"turn": "--turn", "at_run": "--run", "at_offset": "--at"}


async def _fork(
    session_id: str, turn: int | None, at_run: str | None, at_offset: int | None, admin: bool
) -> dict[str, Any]:
    from runwire.projections.sessions.reader import SessionIndex
    from runwire.sessions import AsyncSession

    settings = settings_for(admin)
    async with await SessionIndex.connect(settings) as index:
        row = await index.get(session_id)  # NotFoundError for an unknown session
    # The fork belongs to the session's owner, as if they forked it themselves.
    async with AsyncSession(
        session_id, user_id=row.user_id, tenant=row.tenant, settings=settings
    ) as parent:
        try:
            child = await parent.fork(turn=turn, at_run=at_run, at_offset=at_offset)
        except InputError as e:  # named as the options the user typed
            raise InputError(_OPTIONS.get(e.field, e.field), e.reason) from None
        fork = (await child.info()).fork or {}
        await child.close()
    made: dict[str, Any] = {
        "session_id": child.session_id,
        "parent_session_id": session_id,
        "turn": fork.get("turn", turn),
    }
    if at_run is not None:
        made |= {"at_run": at_run, "at_offset": fork.get("through_offset", at_offset)}
    return made


@app.command("fork")
def fork_session(
    session_id: str = typer.Argument(..., help="The session to fork."),
    turn: int | None = typer.Option(
        None, "--turn", help="Fork at the end of this turn (1 = the first)."
    ),
    at_run: str | None = typer.Option(
        None, "--run", help="Fork inside this run of the session's history (with --at)."
    ),
    at_offset: int | None = typer.Option(
        None,
        "--at",
        help="...as of this log offset of the run's partition (never inside an open tool call).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    admin: bool = typer.Option(False, "--admin", help=ADMIN_HELP),
) -> None:
    """A new session (same owner) sharing this one's history up to a turn, or up to a
    run's log position; prints its id."""
    with fail_on_runwire_error():
        made = asyncio.run(_fork(session_id, turn, at_run, at_offset, admin))
    if as_json:
        typer.echo(json.dumps(made))
    else:
        typer.echo(made["session_id"])


from runwire.cli import sessions_admin  # noqa: E402 - export | import | expire | delete

sessions_admin.register(app)
