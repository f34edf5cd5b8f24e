"""``runwire run PROMPT`` and ``runwire runs cancel RUN_ID``: start and control runs.

``runwire run`` publishes a run (``run_started`` + the prompt) and either
waits for it to end and prints the answer, or with ``--follow`` prints every
event as the services add it: thinking, tool calls, tool results, text and
status. On a terminal, the answer being written is drawn below them as it
streams, and tools as they run (:class:`LivePrinter`); the canonical lines
replace that drawing when they land, so what stays printed is the log.
:func:`render_event` is the one place events become terminal lines
(``runwire chat`` and ``runwire demo`` use it too).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from runwire.cli.common import fail_on_runwire_error
from runwire.client import Client, RunHandle, RunOutcome
from runwire.contract import jsonvalues
from runwire.contract.events import (
    AssistantText,
    Event,
    LiveToolFinished,
    LiveToolStarted,
    RunCanceled,
    RunCompleted,
    RunFailed,
    RunStatus,
    RunStatusChanged,
    Stream,
    Thinking,
    ToolResult,
    ToolUse,
    UserMessage,
)
from runwire.settings import Settings
from runwire.transcript.live import LiveView

__all__ = ["app", "render_event", "run"]

console = Console(highlight=False)
app = typer.Typer(help="Runs: list, show, cancel, pause, resume.")

DEFAULT_AGENT = "assistant"


def _json(value: Any, limit: int = 200) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    except TypeError:  # a Decimal (a number no float writes): exact, compact
        text = jsonvalues.dumps_text(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_event(event: Event, *, show_user: bool = True) -> str | None:
    """One event as a line of rich markup, or None for events people need not see."""
    p = event.payload
    if isinstance(p, UserMessage):
        return f"[bold cyan]user[/] {escape(' '.join(p.parts))}" if show_user else None
    if isinstance(p, Thinking):
        if p.redacted:
            return "[dim italic]  (thinking redacted)[/]"
        return f"[dim italic]  thinking: {escape(p.text or '')}[/]"
    if isinstance(p, AssistantText):
        return f"[bold green]assistant[/] {escape(p.text)}"
    if isinstance(p, ToolUse):
        return f"[yellow]  → {escape(p.name)}[/] {escape(_json(p.input))} [dim]({p.id})[/]"
    if isinstance(p, ToolResult):
        color = "red" if p.is_error else "yellow"
        return f"[{color}]  ← {escape(_json(p.content))}[/]"
    if isinstance(p, RunStatusChanged):
        phase = f" ({p.phase.value})" if p.phase else ""
        return f"[dim]  status: {p.status.value}{phase}[/]"
    if isinstance(p, RunCompleted):
        return "[green]  ✓ completed[/]"
    if isinstance(p, RunFailed):
        return f"[red]  ✗ failed ({escape(p.error_kind)}): {escape(p.message)}[/]"
    if isinstance(p, RunCanceled):
        return f"[magenta]  ✗ canceled[/]{': ' + escape(p.reason) if p.reason else ''}"
    return None


class LivePrinter:
    """Draws what is live (answers streaming, tools running) under the printed lines.

    The drawing is transient (:class:`rich.live.Live`): it is erased when
    nothing is live any more, once the canonical events that settle it were
    printed. On a console that is not a terminal nothing is drawn.
    """

    def __init__(self, out: Console) -> None:
        self._console = out
        self._view = LiveView()
        self._tools: dict[str, str] = {}
        self._live: Live | None = None

    def live(self, event: Event) -> None:
        if not self._view.live(event):
            return
        p = event.payload
        if isinstance(p, LiveToolStarted) and event.causation_id is not None:
            self._tools[event.causation_id] = f"[yellow]  … {escape(p.name)} running[/]"
        elif isinstance(p, LiveToolFinished) and event.causation_id is not None:
            self._tools[event.causation_id] = (
                f"[yellow]  … {escape(p.name)} finished in {p.duration_ms} ms[/]"
            )
        self._draw()

    def canonical(self, event: Event) -> None:
        self._view.canonical(event)
        for cause in [c for c in self._tools if c in self._view.settled or self._view.ended]:
            del self._tools[cause]
        self._draw()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def drawing(self) -> Text:
        """What is live now, as text."""
        lines: list[str] = []
        for answer in self._view.pending.values():
            thinking = answer.text("thinking")
            if thinking:
                lines.append(f"[dim italic]  thinking: {escape(thinking)}[/]")
            text = answer.text("text")
            if text:
                lines.append(f"[bold green]assistant[/] {escape(text)}[dim]▌[/]")
        lines.extend(self._tools.values())
        return Text.from_markup("\n".join(lines))

    def _draw(self) -> None:
        drawing = self.drawing()
        if not drawing.plain:
            self.close()
            return
        if self._live is None:
            self._live = Live(drawing, console=self._console, transient=True, auto_refresh=False)
            self._live.start()
        self._live.update(drawing, refresh=True)


async def follow(handle: RunHandle, *, show_user: bool = True) -> RunOutcome:
    """Print the run's events as they arrive (the answer as it streams, on a terminal);
    return its outcome once it ended."""
    events: list[Event] = []
    printer = LivePrinter(console)
    try:
        async for event in handle.stream():
            if event.stream is Stream.LIVE:
                printer.live(event)
                continue
            events.append(event)
            printer.canonical(event)
            line = render_event(event, show_user=show_user)
            if line is not None:
                console.print(line)
    finally:
        printer.close()
    return RunOutcome.of(handle.run_id, events)


def run(
    prompt: str = typer.Argument(..., help="What to ask the agent."),
    session: str | None = typer.Option(None, "--session", "-s", help="Session the run belongs to."),
    agent: str = typer.Option(DEFAULT_AGENT, "--agent", "-a", help="Agent id."),
    user: str | None = typer.Option(None, "--user", "-u", help="User id."),
    follow_: bool = typer.Option(False, "--follow", "-f", help="Print events as they arrive."),
    timeout: float = typer.Option(120.0, help="Seconds to wait for the run to end."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
) -> None:
    """Start a run and print its answer (needs `runwire stack up` and the services)."""
    with fail_on_runwire_error():
        outcome = asyncio.run(_run(prompt, session, agent, user, follow_, timeout, as_json))
    if outcome.status is not RunStatus.COMPLETED:
        raise typer.Exit(1)


async def _run(
    prompt: str,
    session: str | None,
    agent: str,
    user: str | None,
    follow_: bool,
    seconds: float,
    as_json: bool,
) -> RunOutcome:
    async with Client(Settings()) as rw:
        handle = await rw.run(agent, prompt, session_id=session, user_id=user)
        if not as_json:
            console.print(f"[dim]run {handle.run_id}[/]")
        if follow_ and not as_json:
            outcome = await asyncio.wait_for(follow(handle), seconds)
        else:
            outcome = await handle.wait(seconds)
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "run_id": outcome.run_id,
                    "status": outcome.status.value,
                    "text": outcome.text,
                    "error": outcome.error.model_dump() if outcome.error else None,
                    "events": len(outcome.events),
                }
            )
        )
    elif not follow_:
        if outcome.text:
            console.print(escape(outcome.text))
        if outcome.error is not None:
            console.print(
                f"[red]{escape(outcome.error.error_kind)}: {escape(outcome.error.message)}[/]"
            )
        console.print(f"[dim]{outcome.status.value}[/]")
    return outcome


@app.command("cancel")
def cancel(
    run_id: str = typer.Argument(..., help="The run to cancel."),
    reason: str | None = typer.Option(None, help="Why (kept in the run_canceled event)."),
) -> None:
    """Publish run_canceled: the orchestrator aborts the run's model call and stops."""
    with fail_on_runwire_error():
        position = asyncio.run(_control(run_id, "cancel", reason))
    console.print(
        f"canceled run {run_id} (run_canceled at partition {position.partition}, "
        f"offset {position.offset})"
    )


@app.command("pause")
def pause(
    run_id: str = typer.Argument(..., help="The run to pause."),
    reason: str | None = typer.Option(None, help="Why (kept in the event)."),
) -> None:
    """Pause a run: no new model call or tool call for it until `runwire runs resume`."""
    with fail_on_runwire_error():
        position = asyncio.run(_control(run_id, "pause", reason))
    console.print(f"paused run {run_id} (partition {position.partition}, offset {position.offset})")


@app.command("resume")
def resume(
    run_id: str = typer.Argument(..., help="The paused run to resume."),
) -> None:
    """Resume a paused run where it stopped."""
    with fail_on_runwire_error():
        position = asyncio.run(_control(run_id, "resume", None))
    console.print(
        f"resumed run {run_id} (partition {position.partition}, offset {position.offset})"
    )


async def _control(run_id: str, what: str, reason: str | None) -> Any:
    async with Client(Settings()) as rw:
        if what == "cancel":
            return await rw.cancel(run_id, reason=reason)
        if what == "pause":
            return await rw.pause(run_id, reason=reason)
        return (await rw.resume(run_id))[0]
