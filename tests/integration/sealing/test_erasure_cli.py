"""``runwire sessions erase | rotate-kek`` against the real stack, sealing on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from typer.testing import CliRunner

from runwire.cli.main import app
from runwire.errors import NotFoundError
from runwire.projections.runtime.protocol import Projection
from runwire.sessions import AsyncSession
from runwire.sessions.embedded import projectors_running
from runwire.sessions.log_backend import LogBackend
from runwire.settings import Settings
from tests.integration.sealing.scan import events_of
from tests.integration.sessions.test_sessions_stack import stack_env


async def runwire(*args: str) -> Any:
    """Run the command in a thread (it runs its own event loop); returns the result."""
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


@pytest_asyncio.fixture(loop_scope="session")
async def sealed(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    mine = settings.model_copy(
        update={
            "sealing": True,
            "sealing_key_file": tmp_path / "kek.json",
            "sealing_key_cache_seconds": 0.0,
        }
    )
    env = {
        **stack_env(mine),
        "RUNWIRE_SEALING": "true",
        "RUNWIRE_SEALING_KEY_FILE": str(tmp_path / "kek.json"),
        "RUNWIRE_SEALING_KEY_CACHE_SECONDS": "0",
    }
    for name, value in env.items():
        if name.startswith("RUNWIRE_"):
            monkeypatch.setenv(name, value)
    return mine


@pytest_asyncio.fixture(loop_scope="session")
async def backend(sealed: Settings) -> AsyncIterator[LogBackend]:
    projectors: dict[str, Projection]
    async with projectors_running(sealed) as projectors, LogBackend(sealed) as backend:
        assert projectors
        yield backend


async def _session(backend: LogBackend, text: str) -> str:
    async with AsyncSession(user_id="alice", backend=backend) as s:
        await s.add_message("user", text)
        return s.session_id


async def test_erase_from_the_command_line_twice(sealed: Settings, backend: LogBackend) -> None:
    session_id = await _session(backend, "erase me")
    first = await runwire("sessions", "erase", session_id, "--yes")
    assert first.exit_code == 0, first.output
    receipt = json.loads(first.stdout)
    assert receipt["erased"] == session_id
    assert receipt["destroyed_key_ids"]
    again = await runwire("sessions", "erase", session_id, "--yes")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["destroyed_key_ids"] == []
    with pytest.raises(NotFoundError):
        await AsyncSession(session_id, user_id="alice", backend=backend).open()
    unknown = await runwire("sessions", "erase", "no-such-session", "--yes")
    assert unknown.exit_code != 0
    assert "no-such-session" in unknown.output


async def test_rotating_the_kek_keeps_every_session_readable(
    sealed: Settings, backend: LogBackend
) -> None:
    session_id = await _session(backend, "still here after the rotation")
    key_file = Path(str(sealed.sealing_key_file))
    before = json.loads(await asyncio.to_thread(key_file.read_text))["current"]
    rotated = await runwire("sessions", "rotate-kek")
    assert rotated.exit_code == 0, rotated.output
    report = json.loads(rotated.stdout)
    assert report["from"] == before
    assert report["to"] != before
    assert report["rewrapped"] >= 1
    # This process's key-encryption key learns the new key from the file; the
    # log was not rewritten and reads back whole.
    texts = [
        p
        for e in await events_of(sealed, sealed.topic_for("run_events"))
        if e.session_id == session_id
        for p in getattr(e.payload, "parts", [])
    ]
    assert "still here after the rotation" in texts
    async with AsyncSession(user_id="alice", backend=backend) as s:
        await s.add_message("user", "written after the rotation")
        assert [m.text() for m in await s.get_messages()] == ["written after the rotation"]


async def test_erase_a_user_from_the_command_line_twice(
    sealed: Settings, backend: LogBackend
) -> None:
    mine = await _session(backend, "dave's first")
    async with AsyncSession(user_id="dave", backend=backend) as s:
        await s.add_message("user", "dave's")
        daves = s.session_id
    first = await runwire("users", "erase", "dave", "--yes", "--json")
    assert first.exit_code == 0, first.output
    receipt = json.loads(first.stdout)
    assert receipt["erased_user"] == "dave"
    assert receipt["tenant"] is None
    assert receipt["session_ids"] == [daves]
    assert [k for k in receipt["destroyed_key_ids"] if k.startswith(f"{daves}/")]
    again = await runwire("users", "erase", "dave", "--yes", "--json")
    assert again.exit_code == 0, again.output
    repeated = json.loads(again.stdout)
    for field in ("session_ids", "destroyed_key_ids"):
        assert repeated[field] == receipt[field]
    with pytest.raises(NotFoundError):
        await AsyncSession(daves, user_id="dave", backend=backend).open()
    async with AsyncSession(mine, user_id="alice", backend=backend) as s:  # another user's
        assert [m.text() for m in await s.get_messages()] == ["dave's first"]
    told = await runwire("users", "erase", "dave", "--yes")
    assert told.exit_code == 0, told.output
    assert f"sessions: {daves}" in told.stdout
    bad = await runwire("users", "erase", "bad\x01user", "--yes")
    assert bad.exit_code != 0
    assert "user" in bad.output
