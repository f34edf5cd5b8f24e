"""`runwire stack ...` against the running test stack, as a person or a script uses it."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from runwire.cli.main import app
from runwire.infra.stack import LocalStack


@pytest.fixture
def cli(local_stack: LocalStack) -> CliRunner:
    return CliRunner(env={"RUNWIRE_HOME": str(local_stack.config.home)})


def test_status_json_says_each_part_runs_and_where(cli: CliRunner, local_stack: LocalStack) -> None:
    result = cli.invoke(app, ["stack", "status", "--json"])
    assert result.exit_code == 0, result.output
    parts = json.loads(result.output)
    assert set(parts) == {"kafka", "postgres", "redis"}
    assert all(part["running"] for part in parts.values())
    assert parts["kafka"]["address"] == local_stack.settings().kafka_bootstrap_servers
    assert parts["postgres"]["address"] == local_stack.settings().postgres_dsn
    assert parts["redis"]["address"] == local_stack.settings().redis_url


def test_up_on_a_running_stack_reuses_it_and_says_where_it_listens(
    cli: CliRunner, local_stack: LocalStack
) -> None:
    before = {p.name: p.pid for p in local_stack.status()}
    result = cli.invoke(app, ["stack", "up"])
    assert result.exit_code == 0, result.output
    for part in local_stack.status():
        assert f"running {part.name}" in " ".join(result.output.split())
        assert part.address in result.output
    assert {p.name: p.pid for p in local_stack.status()} == before


def test_logs_prints_the_end_of_a_parts_log(cli: CliRunner) -> None:
    result = cli.invoke(app, ["stack", "logs", "kafka", "-n", "5"])
    assert result.exit_code == 0, result.output
    assert "kafka/logs/server.log" in result.output
    assert "INFO" in result.output
