"""A service process never outlives its loops: a dead loop ends it with one line."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runwire.errors import ConfigurationError
from runwire.services.lifecycle import ServiceDied, run_until_stopped, vital

REPO = Path(__file__).resolve().parents[2]


async def _poll_forever() -> None:
    await asyncio.sleep(0.01)
    raise TypeError("'NoneType' object is not subscriptable")


async def test_a_vital_loop_that_raises_stops_the_service_and_raises_one_line() -> None:
    cleaned_up = asyncio.Event()

    async def service(stop: asyncio.Event) -> None:
        vital(asyncio.create_task(_poll_forever(), name="follow runwire-orchestrator"))
        try:
            await stop.wait()  # a service that would otherwise wait for SIGTERM for ever
        finally:
            cleaned_up.set()

    async with asyncio.timeout(10):
        with pytest.raises(ServiceDied) as caught:
            await run_until_stopped("orchestrator", service, signals=False)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("orchestrator: follow runwire-orchestrator died: TypeError:")
    assert "not subscriptable" in message
    assert "test_service_death.py" in message  # where it was raised
    assert cleaned_up.is_set()  # stop was set: the service stopped cleanly first


async def test_a_service_that_ignores_stop_is_cancelled_after_the_grace() -> None:
    async def service(stop: asyncio.Event) -> None:
        vital(asyncio.create_task(_poll_forever(), name="loop"))
        await asyncio.Event().wait()

    async with asyncio.timeout(10):
        with pytest.raises(ServiceDied, match="loop died"):
            await run_until_stopped("svc", service, grace=0.1, signals=False)


async def test_a_cancelled_or_returning_vital_task_is_a_normal_end() -> None:
    async def service(stop: asyncio.Event) -> None:
        done = vital(asyncio.create_task(asyncio.sleep(0), name="returns"))
        cancelled = vital(asyncio.create_task(asyncio.sleep(60), name="cancelled"))
        await done
        cancelled.cancel()
        await asyncio.wait({cancelled})

    async with asyncio.timeout(10):
        await run_until_stopped("svc", service, signals=False)


async def test_errors_of_the_service_itself() -> None:
    async def broken(stop: asyncio.Event) -> None:
        raise KeyError("partition")

    async def misconfigured(stop: asyncio.Event) -> None:
        raise ConfigurationError("RUNWIRE_X is missing")

    with pytest.raises(ServiceDied, match=r"^svc failed: KeyError: 'partition' \(at "):
        await run_until_stopped("svc", broken, signals=False)
    # A runwire error already says what is wrong in one line: raised as it is.
    with pytest.raises(ConfigurationError, match="RUNWIRE_X is missing"):
        await run_until_stopped("svc", misconfigured, signals=False)


async def test_outside_a_supervised_service_a_dead_loop_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="runwire.services.lifecycle")
    task = vital(asyncio.create_task(_poll_forever(), name="follow x"))
    await asyncio.wait({task})
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].getMessage().startswith("follow x died: TypeError:")
    assert errors[0].exc_info is not None  # with its traceback


def test_runwire_serve_exits_non_zero_with_one_line_when_a_loop_dies(tmp_path: Path) -> None:
    # The real `runwire serve` entry point, with one more service whose loop raises.
    script = textwrap.dedent(
        """
        import asyncio
        import runwire.cli.serve as serve
        from runwire.services.lifecycle import vital

        async def boom() -> None:
            await asyncio.sleep(0.05)
            raise ValueError("bad record")

        async def service(name, settings, stop, instance_id, max_records) -> None:
            vital(asyncio.create_task(boom(), name="follow test"))
            print(f"{name} caught up", flush=True)
            await stop.wait()

        known = serve.services
        serve.services = lambda: {**known(), "boom": service}
        from runwire.cli.main import app
        app(["serve", "boom"])
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "RUNWIRE_HOME": str(tmp_path)},
    )
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stdout.strip() == "boom caught up"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("runwire: error: boom: follow test died: ValueError: bad record")
