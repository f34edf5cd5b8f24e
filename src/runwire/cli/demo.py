"""``runwire demo``: the main job, end to end on the local stack.

What it does (``./dev demo`` runs ``runwire stack up`` first):

1. Provisions the topics and prepares the Postgres tables (migrations).
2. Starts the services as child processes, exactly as you would run them
   yourself: ``runwire serve projector-runs``, ``projector-sessions``,
   ``projector-transcripts``, ``tools`` and ``orchestrator`` (logs in
   ``$RUNWIRE_HOME/logs/demo-*.log``), and waits until each has caught up.
3. Runs a few sessions of multi-turn conversations at the same time through
   the log, with the deterministic local model: it thinks (signed), calls
   the calculator, the clock and memory tools, reads their results and
   answers. One run per user turn; the sessions go concurrently; each run
   is shown its session's earlier runs (recorded as ``context_seeded``), so
   a later turn knows the user's name.
4. Shows what the projections now hold — the run statuses, the session
   index, one full transcript — and the command to tail a run live.
5. Stops the services it started and leaves the stack up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from runwire.cli.common import fail_on_runwire_error
from runwire.client import Client, RunOutcome
from runwire.contract.events import EventType
from runwire.errors import RunwireError
from runwire.settings import Settings

__all__ = ["demo"]

console = Console(highlight=False)

SERVICES = (
    "projector-runs",
    "projector-sessions",
    "projector-transcripts",
    "tools",
    "orchestrator",
    "watchdog",
)


@dataclass(frozen=True)
class Conversation:
    user: str
    turns: tuple[str, ...]
    session: str = ""
    """Session name (default: the user's name)."""


CONVERSATIONS = (
    Conversation(
        "alice",
        (
            "Hi! My name is Alice.",
            "Remember that my favourite colour is green.",
            "What is 12 * (3 + 4)?",
            "What is my favourite colour?",
            "And what is my name?",
        ),
    ),
    Conversation(
        "bob",
        (
            "What time is it?",
            "Remember that my city is Lisbon.",
            "What is 2 ** 10 - 24 and 100 / 8?",
        ),
    ),
    Conversation(
        "carol",
        (
            "What is 7 * 6?",
            "What is my city?",
            "Please keep this private: what is 19 * 21?",
        ),
    ),
)

COMEBACK = Conversation("alice", ("What is my favourite colour?",), session="alice-next-day")
"""Alice in a new session, after the others: no history, so memory answers."""


def demo(
    keep_services: bool = typer.Option(
        False, "--keep-services", help="Leave the services running after the demo."
    ),
) -> None:
    """Run the services and several tool-using conversations; show the projections."""
    settings = Settings()
    with fail_on_runwire_error():
        asyncio.run(_demo(settings, keep_services))


async def _demo(settings: Settings, keep_services: bool) -> None:
    console.rule("[bold]runwire demo")
    await _prepare(settings)
    async with _services(settings, keep_services):
        tag = uuid.uuid4().hex[:6]
        started = time.monotonic()
        outcomes = await _converse(settings, tag)
        elapsed = time.monotonic() - started
        total = sum(len(o) for o in outcomes.values())
        console.print(
            f"[green]{total} runs in {len(outcomes)} sessions ended in {elapsed:.1f}s[/]\n"
        )
        await _show(settings, outcomes)


# -- 1. topics and tables -----------------------------------------------------------


async def _prepare(settings: Settings) -> None:
    from runwire.infra.topics import provision_topics
    from runwire.projections.runs.reader import RunStore
    from runwire.projections.sessions.reader import SessionIndex

    console.print(f"[bold]1.[/] topics on {settings.kafka_bootstrap_servers}")
    try:
        report = await provision_topics(settings)
    except Exception as e:
        raise RunwireError(
            f"cannot provision topics on {settings.kafka_bootstrap_servers} ({e}); "
            "is the stack up? run `runwire stack up`"
        ) from e
    console.print(
        f"   created {len(report.created)}, reconciled {len(report.reconciled)}, "
        f"unchanged {len(report.unchanged)}"
    )
    console.print("   tables in Postgres (migrations)")
    for reader in (RunStore, SessionIndex):
        store = await reader.connect(settings)
        await store.close()


# -- 2. the services ------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _services(settings: Settings, keep: bool) -> AsyncIterator[None]:
    from runwire.services.process import ServiceProcess

    logs = settings.home / "logs"
    console.print(f"[bold]2.[/] starting {', '.join(SERVICES)} (logs: {logs}/demo-*.log)")
    processes = [
        ServiceProcess.serve(name, settings, log_file=logs / f"demo-{name}.log")
        for name in SERVICES
    ]
    try:
        for process in processes:
            await process.start()
        await asyncio.gather(*(p.wait_caught_up(timeout=90) for p in processes))
        pids = ", ".join(
            f"{p.name} (pid {p.process.pid})" for p in processes if p.process is not None
        )
        console.print(f"   running: {pids}\n")
        yield
    finally:
        if keep:
            console.print("[dim]services left running (--keep-services); stop them with kill[/]")
        else:
            await asyncio.gather(*(p.stop() for p in processes), return_exceptions=True)
            console.print("[dim]services stopped; the stack is still up (`runwire stack down`)[/]")


# -- 3. the conversations -------------------------------------------------------------


async def _converse(settings: Settings, tag: str) -> dict[str, list[RunOutcome]]:
    from runwire.projections.runs.reader import RunStore

    console.print("[bold]3.[/] conversations (one run per user turn, sessions at once)")
    async with await RunStore.connect(settings) as runs, Client(settings, runs=runs) as rw:

        async def session(conversation: Conversation) -> tuple[str, list[RunOutcome]]:
            session_id = f"demo-{tag}-{conversation.session or conversation.user}"
            user_id = f"{conversation.user}-{tag}"
            done: list[RunOutcome] = []
            for turn, prompt in enumerate(conversation.turns, start=1):
                handle = await rw.run(
                    "assistant",
                    prompt,
                    session_id=session_id,
                    user_id=user_id,
                    turn_id=f"turn-{turn}",
                    labels={"demo": tag},
                )
                outcome = await handle.wait(timeout=120)
                done.append(outcome)
                tools = [
                    e.payload.name  # type: ignore[union-attr]
                    for e in outcome.events
                    if e.type is EventType.TOOL_USE
                ]
                via = f" [dim](via {', '.join(tools)})[/]" if tools else ""
                console.print(
                    f"   [cyan]{conversation.user}[/] {escape(prompt)}\n"
                    f"   [green]→[/] {escape(outcome.text) or outcome.status.value}{via}"
                )
            return session_id, done

        results = await asyncio.gather(*(session(c) for c in CONVERSATIONS))
        results.append(await session(COMEBACK))
    console.print()
    return dict(results)


# -- 4. what the projections hold -------------------------------------------------------


async def _show(settings: Settings, outcomes: dict[str, list[RunOutcome]]) -> None:
    from runwire.cli.transcript import render_message
    from runwire.projections.runs.reader import RunStore
    from runwire.projections.sessions.reader import SessionIndex
    from runwire.projections.transcripts.reader import TranscriptCache

    console.print("[bold]4.[/] what the projections hold (all of it rebuilt from the log)\n")
    async with (
        await RunStore.connect(settings) as runs,
        await SessionIndex.connect(settings) as sessions,
        TranscriptCache(settings) as transcripts,
    ):
        table = Table(title="Run status (Postgres: run_status)", title_justify="left")
        for column in ("run", "session", "status", "tools", "tokens", "in the log"):
            table.add_column(column, no_wrap=True)
        for session_id, done in outcomes.items():
            for outcome in done:
                row = await runs.get(outcome.run_id)
                table.add_row(
                    "…" + row.run_id[-8:],
                    session_id.split("-", 2)[-1],
                    row.status,
                    str(row.tool_call_count),
                    f"{row.input_tokens}/{row.output_tokens}",
                    f"partition {row.log_partition} @{row.first_offset}-{row.last_offset}",
                )
        console.print(table)

        index = Table(title="Session index (Postgres: session_index)", title_justify="left")
        for column in ("session", "user", "status", "runs", "last activity"):
            index.add_column(column)
        for session_id in outcomes:
            for _ in range(100):  # the session projector may be a moment behind
                row_s = await sessions.get(session_id)
                if row_s.run_count >= len(outcomes[session_id]):
                    break
                await asyncio.sleep(0.1)
            index.add_row(
                session_id,
                row_s.user_id or "",
                row_s.status,
                str(row_s.run_count),
                row_s.last_activity_at.strftime("%H:%M:%S"),
            )
        console.print(index)

        shown = _most_interesting(outcomes)
        console.print(
            f"\n[bold]Transcript of run {shown.run_id}[/] (Redis transcript cache: the "
            "canonical messages a provider gets, thinking signatures byte for byte)"
        )
        for _ in range(100):
            with contextlib.suppress(RunwireError):
                messages = await transcripts.get(shown.run_id)
                if messages == shown.messages:
                    break
            await asyncio.sleep(0.1)
        for i, message in enumerate(messages):
            render_message(console, i, message)

    console.print(
        "\n[bold]5.[/] tail a run live, event by event, from the log:\n"
        f"   runwire transcript {shown.run_id} --follow\n"
        '   runwire run "what is 6 * 7?" --follow        (a new run, with the services up)\n'
        "   runwire chat                                 (an interactive session)\n"
    )


def _most_interesting(outcomes: dict[str, list[RunOutcome]]) -> RunOutcome:
    """The run with the most tool calls (ties: the first)."""
    every = [o for done in outcomes.values() for o in done]
    return max(every, key=lambda o: sum(e.type is EventType.TOOL_USE for e in o.events))
