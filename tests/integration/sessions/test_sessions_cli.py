"""``runwire sessions import | export | expire | delete`` against the real stack."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from runwire.cli.main import app
from runwire.errors import NotFoundError
from runwire.sessions import AsyncSession
from runwire.sessions.log_backend import LogBackend
from runwire.settings import Settings
from tests.integration.sessions.test_sessions_stack import stack_env
from tests.unit.sessions.agents_data import WEATHER, sdk_file


async def runwire(*args: str) -> Any:
    """Run the command in a thread (it runs its own event loop); returns the result."""
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


async def test_agents_sqlite_file_through_the_cli(
    log_backend: LogBackend, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in stack_env(settings).items():
        if name.startswith("RUNWIRE_"):
            monkeypatch.setenv(name, value)
    path = await sdk_file(tmp_path, {"conv-1": WEATHER})

    result = await runwire("sessions", "import", str(path), "--user", "alice", "--json")
    assert result.exit_code == 0, result.output
    (imported,) = json.loads(result.stdout)
    assert (imported["session_id"], imported["created"]) == ("conv-1", True)
    assert imported["skipped"] == {"reasoning": 1}
    async with AsyncSession("conv-1", user_id="alice", backend=log_backend) as s:
        assert [m.role for m in await s.get_messages()] == ["user", "assistant"] * 3
    again = await runwire("sessions", "import", str(path), "--user", "alice")
    assert again.exit_code == 0, again.output
    assert "already imported conv-1" in again.stdout

    exported = await runwire("sessions", "export", "conv-1")
    assert exported.exit_code == 0, exported.output
    doc = json.loads(exported.stdout)
    assert doc["version"] == 1
    assert [len(r["messages"]) for r in doc["runs"]] == [4, 2]
    file = tmp_path / "conv-1.json"
    file.write_text(exported.stdout)
    copied = await runwire("sessions", "import", str(file), "--json")
    assert copied.exit_code == 0, copied.output
    (copy,) = json.loads(copied.stdout)
    assert copy["renamed"], "conv-1 is taken: a new id"
    async with AsyncSession(copy["session_id"], user_id="alice", backend=log_backend) as c:
        assert len(await c.get_messages()) == 6

    expired = await runwire("sessions", "expire", "--idle", "0s", "--json")
    assert expired.exit_code == 0, expired.output
    assert {"conv-1", copy["session_id"]} <= set(json.loads(expired.stdout)["ended"])
    async with AsyncSession("conv-1", user_id="alice", backend=log_backend) as s:
        assert (await s.info()).status == "ended"

    deleted = await runwire("sessions", "delete", "conv-1", "--yes")
    assert deleted.exit_code == 0, deleted.output
    with pytest.raises(NotFoundError):
        await AsyncSession("conv-1", user_id="alice", backend=log_backend).open()
    missing = await runwire("sessions", "delete", "conv-1", "--yes")
    assert missing.exit_code == 1
    assert "no session 'conv-1'" in missing.output
    bad = await runwire("sessions", "expire", "--idle", "soon")
    assert bad.exit_code == 1
    assert "--idle" in bad.output
