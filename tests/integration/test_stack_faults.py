"""Bad input and faults: one clear line naming the problem and the fix, a non-zero
exit, and nothing half-started left running."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from runwire.errors import StackError
from runwire.infra.stack import LocalStack, StackConfig
from tests.conftest import free_port, stack_config
from tests.integration.test_stack_lifecycle import _processes_under


def _cli(home: Path, config: StackConfig, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWIRE_")}
    env["RUNWIRE_HOME"] = str(home)
    for name in ("kafka_port", "kafka_controller_port", "postgres_port", "redis_port"):
        env[f"RUNWIRE_STACK_{name.upper()}"] = str(getattr(config, name))
    return subprocess.run(
        [sys.executable, "-m", "runwire.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_taken_port_is_one_clear_line_and_nothing_starts(tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = stack_config(home)
    with socket.socket() as squatter:
        try:
            squatter.bind(("127.0.0.1", config.redis_port))
            squatter.listen()
        except OSError as e:
            # Something else (another stack of this machine) holds the port
            # already: it is taken all the same.
            if e.errno != errno.EADDRINUSE:
                raise
        result = _cli(home, config, "stack", "up")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"port {config.redis_port}" in lines[0]
    assert "fix:" in lines[0]
    assert "RUNWIRE_STACK_REDIS_PORT=" in lines[0]
    assert _processes_under(home) == []
    assert _cli(home, config, "stack", "status").returncode == 1


async def test_a_part_that_fails_late_stops_what_the_same_up_started(tmp_path: Path) -> None:
    home = tmp_path / "home"
    stack = LocalStack(stack_config(home))
    # A data dir from a PostgreSQL that does not exist: Kafka is already starting when
    # Postgres refuses, so `up` must stop the broker it spawned.
    data = stack.postgres.data_dir
    data.mkdir(parents=True)
    (data / "PG_VERSION").write_text("99\n")
    with pytest.raises(StackError, match="PostgreSQL"):
        await stack.up()
    assert not any(part.running for part in stack.status())
    assert _processes_under(home) == []


@pytest.mark.parametrize(
    ("override", "names", "fix"),
    [
        ({"java": "/nonexistent/java"}, "Java not found", "apt-get install openjdk-17"),
        ({"maven": "/nonexistent/mvn"}, "Maven not found", "apt-get install maven"),
        ({"redis_server": "/nonexistent/redis-server"}, "Redis is not installed", "redis-server"),
        (
            {"postgres_bin_dir": Path("/nonexistent/bin")},
            "PostgreSQL server is not installed",
            "apt-get install postgresql",
        ),
    ],
)
async def test_a_missing_program_is_named_with_its_package(
    tmp_path: Path, override: dict[str, object], names: str, fix: str
) -> None:
    home = tmp_path / "home"
    if "maven" in override:  # Maven is only needed while the broker jars are not cached
        override = {**override, "cache_dir": tmp_path / "cache"}
    stack = LocalStack(stack_config(home).model_copy(update=override))
    with pytest.raises(StackError) as caught:
        await stack.up()
    assert names in caught.value.problem
    assert caught.value.fix is not None
    assert fix in caught.value.fix
    assert _processes_under(home) == []


async def test_maven_central_unreachable_says_so_and_how_to_fix(tmp_path: Path) -> None:
    home = tmp_path / "home"
    dead = f"http://127.0.0.1:{free_port()}/maven2"  # nothing listens there
    config = stack_config(home).model_copy(
        update={
            "cache_dir": tmp_path / "cache",
            "maven_mirror": dead,
            "maven_repo_local": tmp_path / "m2",
        }
    )
    with pytest.raises(StackError) as caught:
        await LocalStack(config).up()
    assert "Maven" in caught.value.problem
    assert dead in caught.value.problem
    assert caught.value.fix is not None
    assert "RUNWIRE_STACK_MAVEN_MIRROR" in caught.value.fix
    assert not config.kafka_jars_dir.exists()  # no half-filled cache to trust later
    assert _processes_under(home) == []


async def test_a_data_dir_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    home = blocker / "home"
    with pytest.raises(StackError) as caught:
        await LocalStack(stack_config(home)).up()
    assert str(home) in caught.value.problem
    assert "not writable" in caught.value.problem
    assert caught.value.fix is not None
    assert "RUNWIRE_HOME" in caught.value.fix
