"""``runwire transcript RUN_ID [--json] [--follow] [--at OFFSET | --turn N]``: show a run's transcript.

Without ``--follow`` the canonical messages come from the transcript cache
(rebuilt from the log on a miss). With ``--follow`` the run is tailed live
from the log: thinking, text, tool calls and results as they are written,
until the run ends (``--idle`` seconds without an event also end it).
``--at OFFSET`` (a log offset of the run's partition) or ``--turn N`` shows
the transcript as it was then, read from the log (time travel).
``--json`` prints the messages as JSON (with ``--follow``: one event per
line, as JSON). ``--notes`` reads the run from the log by its positions and
shows the planner's notes after the message each was written with (with
``--json``: ``{"messages": [...], "notes": [{"after_message", "text",
"event_id", "occurred_at"}]}``; with ``--follow``: the notes in the rendered
stream; the JSON stream has every event anyway).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from runwire.cli.common import ADMIN_HELP, fail_on_runwire_error, settings_for
from runwire.contract import jsonvalues
from runwire.contract.events import (
    AssistantText,
    Event,
    PlannerNote,
    RunCanceled,
    RunCompleted,
    RunFailed,
    RunStatusChanged,
    Thinking,
    ToolResult,
    ToolUse,
    UserMessage,
)
from runwire.settings import Settings
from runwire.transcript.messages import (
    Message,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolUsePart,
)

_MAX_JSON = 2000


def _json(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except TypeError:  # a Decimal (a number no float writes): exact, compact
        text = jsonvalues.dumps_text(value)
    return text if len(text) <= _MAX_JSON else text[:_MAX_JSON] + " …"


def _thinking(text: str | None, signature: str | None, redacted: bytes | None) -> Text:
    if redacted:
        return Text(f"  [thinking: redacted, {len(redacted)} bytes]", style="dim")
    line = Text("  thinking: ", style="dim bold")
    line.append(text or "", style="dim italic")
    if signature:
        line.append(f"  (signed, {len(signature)} chars)", style="dim")
    return line


def _tool_use(name: str, id: str, input: Any) -> Text:
    line = Text("  → ", style="cyan")
    line.append(name, style="bold cyan")
    line.append(f" {_json(input)}", style="cyan")
    line.append(f"  [{id}]", style="dim")
    return line


def _tool_result(tool_use_id: str, content: Any, is_error: bool) -> Text:
    style = "red" if is_error else "green"
    line = Text("  ← " + ("error " if is_error else ""), style=style)
    line.append(_json(content), style=style)
    line.append(f"  [{tool_use_id}]", style="dim")
    return line


def _note(text: str) -> Text:
    line = Text("  note: ", style="yellow bold")
    line.append(text, style="yellow")
    return line


def render_message(console: Console, index: int, message: Message) -> None:
    console.print(Text(f"#{index} {message.role}", style="bold magenta"))
    for part in message.parts:
        if isinstance(part, ThinkingPart):
            console.print(_thinking(part.text, part.signature, part.redacted))
        elif isinstance(part, TextPart):
            console.print(Text("  " + part.text))
        elif isinstance(part, ToolUsePart):
            console.print(_tool_use(part.name, part.id, part.input))
        elif isinstance(part, ToolResultPart):
            console.print(_tool_result(part.tool_use_id, part.content, part.is_error))


def render_event(console: Console, event: Event) -> None:
    p = event.payload
    if isinstance(p, UserMessage):
        for text in p.parts:
            console.print(Text("user: ", style="bold magenta") + Text(text))
    elif isinstance(p, Thinking):
        console.print(_thinking(p.text, p.signature, p.redacted))
    elif isinstance(p, AssistantText):
        console.print(Text("  " + p.text))
    elif isinstance(p, ToolUse):
        console.print(_tool_use(p.name, p.id, p.input))
    elif isinstance(p, ToolResult):
        console.print(_tool_result(p.tool_use_id, p.content, p.is_error))
    elif isinstance(p, PlannerNote):
        console.print(_note(p.text))
    elif isinstance(p, RunStatusChanged):
        phase = f" / {p.phase.value}" if p.phase else ""
        console.print(Text(f"[{p.status.value}{phase}]", style="yellow"))
    elif isinstance(p, RunCompleted):
        console.print(Text(f"[completed: {p.stop_reason or 'done'}]", style="bold green"))
    elif isinstance(p, RunFailed):
        console.print(Text(f"[failed: {p.error_kind}: {p.message}]", style="bold red"))
    elif isinstance(p, RunCanceled):
        console.print(Text(f"[canceled: {p.reason or ''}]", style="bold yellow"))


async def _tenant_of(settings: Settings, run_id: str) -> str | None:
    """Whose keys of the transcript cache hold the run: the process's tenant, or
    for the admin, the run's own (from the run-status store, if it knows it)."""
    if not settings.admin:
        return settings.tenant
    from runwire.errors import NotFoundError
    from runwire.projections.runs.reader import RunStore

    async with await RunStore.connect(settings) as runs:
        try:
            return (await runs.get(run_id)).tenant
        except NotFoundError:
            return None


async def _show(
    settings: Settings,
    run_id: str,
    as_json: bool,
    console: Console,
    at: int | None = None,
    turn: int | None = None,
) -> None:
    from pydantic import TypeAdapter

    from runwire.projections.transcripts.reader import TranscriptCache
    from runwire.transcript.messages import Message

    when = ""
    async with TranscriptCache(settings, tenant=await _tenant_of(settings, run_id)) as cache:
        if at is None and turn is None:
            messages = await cache.get(run_id)
        else:
            past = await cache.get_at(run_id, offset=at, turn=turn)
            messages = past.messages
            when = f" as of offset {past.offset} of partition {past.partition}"
            if turn is not None:
                when += f" (end of turn {turn})"
    if as_json:
        typer.echo(TypeAdapter(list[Message]).dump_json(messages, indent=2).decode())
        return
    console.print(Text(f"run {run_id}{when}: {len(messages)} messages", style="bold"))
    for i, message in enumerate(messages):
        render_message(console, i, message)


async def _show_with_notes(
    settings: Settings, run_id: str, as_json: bool, console: Console
) -> None:
    from runwire.stores.log_backend import run_events
    from runwire.transcript.errors import LedgerError
    from runwire.transcript.ledger import TranscriptBuilder

    builder = TranscriptBuilder(run_id)
    notes: list[tuple[int, Event, str]] = []
    for event in await run_events(settings, run_id):
        try:
            builder.apply(event)
        except LedgerError:
            continue  # refused by every reader: not part of the transcript
        if isinstance(event.payload, PlannerNote):
            notes.append((len(builder.messages()) - 1, event, event.payload.text))
    messages = builder.messages()
    if as_json:
        out = {
            "messages": [m.model_dump(mode="json") for m in messages],
            "notes": [
                {
                    "after_message": at,
                    "text": text,
                    "event_id": e.event_id,
                    "occurred_at": e.occurred_at.isoformat(),
                }
                for at, e, text in notes
            ],
        }
        typer.echo(jsonvalues.dumps_text(out))
        return
    console.print(Text(f"run {run_id}: {len(messages)} messages, {len(notes)} notes", style="bold"))
    for at, _, text in notes:
        if at < 0:
            console.print(_note(text))
    for i, message in enumerate(messages):
        render_message(console, i, message)
        for at, _, text in notes:
            if at == i:
                console.print(_note(text))


async def _follow(
    settings: Settings,
    run_id: str,
    as_json: bool,
    idle: float | None,
    console: Console,
    notes: bool = False,
) -> None:
    from runwire.log.watcher import follow_run
    from runwire.projections.transcripts.reader import TranscriptCache

    async with TranscriptCache(settings, tenant=await _tenant_of(settings, run_id)) as cache:
        start = await cache.start_of(run_id)
    if not as_json:
        where = "from its first event" if start else "from now (run not seen yet)"
        console.print(Text(f"following run {run_id} {where}; Ctrl-C to stop", style="dim"))
    async for event in follow_run(settings, run_id, start=start, idle_timeout=idle):
        if as_json:
            typer.echo(event.model_dump_json())
        elif notes or not isinstance(event.payload, PlannerNote):
            render_event(console, event)


def transcript(
    run_id: str = typer.Argument(..., help="The run whose transcript to show."),
    as_json: bool = typer.Option(False, "--json", help="JSON output for scripts."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Tail the run live from the log."),
    idle: float | None = typer.Option(
        None, "--idle", help="With --follow: stop after this many seconds without an event."
    ),
    notes: bool = typer.Option(
        False, "--notes", help="Show the planner's notes (read from the log)."
    ),
    at: int | None = typer.Option(
        None, "--at", help="The transcript as of this log offset (of the run's partition)."
    ),
    turn: int | None = typer.Option(
        None, "--turn", help="The transcript as of the end of this turn (1 = the first)."
    ),
    admin: bool = typer.Option(False, "--admin", help=ADMIN_HELP),
) -> None:
    """Show a run's transcript (canonical messages), or follow it live."""
    settings = settings_for(admin)
    console = Console()
    with fail_on_runwire_error():
        try:
            if (follow or notes) and (at is not None or turn is not None):
                raise typer.BadParameter(
                    "--at and --turn read the past: not with --follow or --notes"
                )
            if follow:
                asyncio.run(_follow(settings, run_id, as_json, idle, console, notes))
            elif notes:
                asyncio.run(_show_with_notes(settings, run_id, as_json, console))
            else:
                asyncio.run(_show(settings, run_id, as_json, console, at, turn))
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
