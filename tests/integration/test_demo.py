"""`runwire demo`, the README's main job, on the test stack (its own topics, schema, keys)."""

from __future__ import annotations

import os
import re

from typer.testing import CliRunner

from runwire.cli.demo import SERVICES
from runwire.cli.main import app
from runwire.services.process import settings_env
from runwire.settings import Settings


def test_the_demo_runs_conversations_through_the_services_and_shows_the_projections(
    settings: Settings,
) -> None:
    env = settings_env(settings)
    result = CliRunner(env=env).invoke(app, ["demo"], catch_exceptions=False)
    output = result.output
    assert result.exit_code == 0, output
    flat = " ".join(output.split())
    # Every service came up, caught up, and was stopped again.
    assert "running: projector-runs (pid" in flat
    pids = [int(p) for p in re.findall(r"\(pid (\d+)\)", flat)]
    assert len(pids) == len(SERVICES)
    for pid in pids:
        assert not _alive(pid), f"service pid {pid} was left running"
    assert "services stopped" in flat
    # The conversations: tools called, memory across runs, answers computed.
    assert "12 runs in 4 sessions ended" in flat
    assert "Your name is Alice." in flat  # said in the first run, known in the fifth
    assert "12 * (3 + 4) = 84." in flat
    assert "Your favourite colour is green. (via recall)" in flat
    assert "2 ** 10 - 24 = 1000. 100 / 8 = 12.5." in flat
    assert "I don't know your city yet." in flat  # bob's memory is not carol's
    # What the projections hold.
    assert flat.count("completed") >= 12
    assert "Session index" in flat
    assert "Transcript of run" in flat
    assert "thinking:" in flat
    assert "→ calculator" in flat
    assert re.search(r"runwire transcript [0-9a-f-]{36} --follow", flat)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) is not running.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
