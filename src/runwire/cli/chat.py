"""``runwire chat``: an interactive conversation on one session, live from the log.

Each line you type is one run in the session (one user turn). While the run
goes on, its thinking, tool calls, tool results and answer are printed as the
orchestrator and tool runner add them to the log. Ctrl-C during a turn
cancels that run; Ctrl-D, an empty line or ``/exit`` ends the chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import typer
from rich.console import Console

from runwire.cli.common import fail_on_runwire_error
from runwire.cli.run import DEFAULT_AGENT, follow
from runwire.client import Client
from runwire.settings import Settings

__all__ = ["chat"]

console = Console(highlight=False)


def chat(
    session: str | None = typer.Option(
        None, "--session", "-s", help="Session to continue (default: a new one)."
    ),
    agent: str = typer.Option(DEFAULT_AGENT, "--agent", "-a", help="Agent id."),
    user: str | None = typer.Option(None, "--user", "-u", help="User id."),
) -> None:
    """Talk to an agent; every event of every turn is printed as it arrives."""
    session_id = session or f"chat-{uuid.uuid4().hex[:8]}"
    console.print(
        f"[dim]session {session_id} — one run per line; Ctrl-C cancels a turn, "
        "Ctrl-D or /exit ends[/]"
    )
    with fail_on_runwire_error():
        asyncio.run(_chat(session_id, agent, user))


async def _read_line() -> str | None:
    try:
        return await asyncio.to_thread(console.input, "[bold cyan]you>[/] ")
    except EOFError:
        return None


async def _chat(session_id: str, agent: str, user: str | None) -> None:
    async with Client(Settings()) as rw:
        while True:
            line = await _read_line()
            if line is None or not line.strip() or line.strip() == "/exit":
                return
            handle = await rw.run(agent, line.strip(), session_id=session_id, user_id=user)
            turn = asyncio.create_task(follow(handle, show_user=False))
            try:
                await asyncio.shield(turn)
            except (KeyboardInterrupt, asyncio.CancelledError):
                # Ctrl-C cancels the main task (asyncio.run's handler): the
                # chat goes on, the run does not.
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
                await handle.cancel("canceled from runwire chat")
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(turn, 10)
