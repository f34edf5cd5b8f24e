"""`runwire run`, `runwire chat` and `runwire runs cancel` against running services."""

from __future__ import annotations

import asyncio

from typer.testing import CliRunner, Result

from runwire.cli.main import app
from runwire.client import Client
from runwire.contract.events import RunStatus
from runwire.providers.local import LocalModel
from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.services.process import settings_env
from runwire.services.tools.wiring import tool_runner_service
from runwire.settings import Settings
from tests.integration.orchestration_support import projectors


async def invoke(settings: Settings, args: list[str], input: str | None = None) -> Result:
    """The command in a thread (it runs its own event loop) while the services run here."""
    runner = CliRunner(env=settings_env(settings))
    return await asyncio.to_thread(runner.invoke, app, args, input=input, catch_exceptions=False)


async def test_run_follows_a_tool_using_run_and_chat_remembers_the_session(
    settings: Settings,
) -> None:
    async with projectors(settings), orchestrator_service(settings), tool_runner_service(settings):
        result = await invoke(settings, ["run", "what is 6 * 7?", "--session", "cli-1", "--follow"])
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert any("thinking:" in line for line in lines)
        assert any("→ calculator" in line for line in lines)
        assert any("← {" in line and "42" in line for line in lines)
        assert any("6 * 7 = 42." in line for line in lines)
        assert lines[-1].strip() == "✓ completed"

        chat = await invoke(
            settings,
            ["chat", "--session", "cli-chat"],
            input="My name is Bob.\nWhat is my name?\n/exit\n",
        )
        assert chat.exit_code == 0, chat.output
        assert "Nice to meet you, Bob!" in chat.output
        assert "Your name is Bob." in chat.output  # the second run saw the first


async def test_runs_cancel_ends_a_run_in_flight(settings: Settings) -> None:
    slow = LocalModel(latency=30.0)
    async with orchestrator_service(settings, provider=slow, history=False), Client(settings) as rw:
        handle = await rw.run("assistant", "take your time")
        result = await invoke(settings, ["runs", "cancel", handle.run_id, "--reason", "enough"])
        assert result.exit_code == 0, result.output
        assert f"canceled run {handle.run_id}" in result.output
        outcome = await handle.wait(timeout=20)
    assert outcome.status is RunStatus.CANCELED
