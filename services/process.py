"""Running a service as a process: signals, logging, options (``python -m runwire.services X``).

Contract:
- :func:`run_service` reads ``Settings()`` from the environment, runs the
  service until SIGTERM or SIGINT, then stops it cleanly (in-flight work is
  cancelled, safe offsets committed) and returns the exit code.
- ``--instance-id ID`` makes the process a static member of its consumer
  group: restarted with the same id (after a crash), it gets its partitions
  back at once instead of after the session timeout.
- ``--local-latency SECONDS`` slows the local model down, ``--tool-latency
  SECONDS`` the built-in tools (demos and tests of concurrency and crashes);
  the first is refused with another provider.
- A loop of the service that dies ends the process with one line on stderr
  and exit code 1 (:func:`runwire.services.lifecycle.run_until_stopped`);
  logging is :func:`runwire.logs.configure_service_logging`.
- ``--metrics-port PORT`` (or ``RUNWIRE_METRICS_PORT``) serves ``/metrics``,
  ``/healthz`` and ``/readyz``; ``OTEL_*`` switches tracing on
  (:mod:`runwire.telemetry.process`).
- Prints one line ``<name> caught up`` on stdout once every assigned
  partition has been read to its end, so a supervisor can wait for it.

:class:`ServiceProcess` is the supervisor side: it starts a service as a
child process with exactly the given settings (as ``RUNWIRE_*`` variables),
waits for its ``caught up`` line, and stops it with SIGTERM (or SIGKILL, for
crash tests). ``runwire demo`` and the tests use it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import SecretStr

from runwire.errors import ConfigurationError, RunwireError
from runwire.logs import configure_service_logging
from runwire.services.follower import FollowerOptions
from runwire.services.lifecycle import run_until_stopped
from runwire.settings import Settings
from runwire.telemetry.process import observed

__all__ = ["ServiceName", "ServiceProcess", "run_service", "serve", "settings_env"]

ServiceName = Literal["orchestrator", "tools"]


def _parser(name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m runwire.services {name}")
    parser.add_argument("--instance-id", default=None, help="static consumer-group member id")
    parser.add_argument(
        "--local-latency", type=float, default=0.0, help="seconds the local model takes per call"
    )
    parser.add_argument(
        "--tool-latency", type=float, default=0.0, help="seconds each built-in tool takes"
    )
    parser.add_argument(
        "--max-records", type=int, default=None, help="records per fetch (default 2000)"
    )
    parser.add_argument(
        "--no-history",
        action="store_true",
        help="orchestrator: no session history in the model input (no projections needed)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve /metrics, /healthz and /readyz on this port (RUNWIRE_METRICS_PORT)",
    )
    parser.add_argument(
        "--agents",
        default=None,
        help="agents file (TOML): agents for the orchestrator, HTTP tools for tools",
    )
    parser.add_argument("--log-level", default="INFO")
    return parser


async def serve(
    name: ServiceName,
    settings: Settings,
    stop: asyncio.Event,
    *,
    instance_id: str | None = None,
    local_latency: float = 0.0,
    tool_latency: float = 0.0,
    max_records: int | None = None,
    history: bool = True,
) -> None:
    """Run service ``name`` until ``stop`` is set."""
    options = FollowerOptions(group_instance_id=instance_id)
    if max_records:
        options = dataclasses.replace(options, max_records=max_records)
    if name == "orchestrator":
        from runwire.providers.base import ModelProvider
        from runwire.providers.local import LocalModel
        from runwire.services.orchestrator.wiring import orchestrator_service

        provider: ModelProvider | None = None
        if local_latency:
            if settings.model_provider != "local":
                raise ConfigurationError("--local-latency only applies to the local model")
            provider = LocalModel(model=settings.model_name, latency=local_latency)
        async with orchestrator_service(
            settings, provider=provider, follower_options=options, history=history
        ) as service:
            await _announce(name, service.wait_caught_up(), stop)
    else:
        from runwire.services.tools.wiring import tool_runner_service

        async with tool_runner_service(
            settings, follower_options=options, tool_latency=tool_latency
        ) as runner:
            await _announce(name, runner.wait_caught_up(), stop)


async def _announce(name: str, caught_up: Coroutine[Any, Any, None], stop: asyncio.Event) -> None:
    waiter = asyncio.ensure_future(caught_up)
    stopper = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if waiter in done and waiter.exception() is None:
        print(f"{name} caught up", flush=True)
    await stopper
    waiter.cancel()


def run_service(name: ServiceName, argv: Sequence[str] | None = None) -> int:
    """The process entry point of service ``name``; returns the exit code."""
    args = _parser(name).parse_args(argv)
    configure_service_logging(name, args.log_level)

    async def main() -> None:
        settings = Settings()
        if args.metrics_port is not None:
            settings = settings.model_copy(update={"metrics_port": args.metrics_port})
        if args.agents is not None:
            settings = settings.model_copy(update={"agents_file": Path(args.agents)})
        async with observed(name, settings):
            await run_until_stopped(
                name,
                lambda stop: serve(
                    name,
                    settings,
                    stop,
                    instance_id=args.instance_id,
                    local_latency=args.local_latency,
                    tool_latency=args.tool_latency,
                    max_records=args.max_records,
                    history=not args.no_history,
                ),
            )

    try:
        asyncio.run(main())
    except RunwireError as e:
        print(f"runwire {name}: error: {e}", file=sys.stderr)
        return 1
    return 0


# -- the supervisor side ------------------------------------------------------------


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process exactly ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWIRE_")}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()  # its str() is a mask, not the secret
        if value is not None:
            env[f"RUNWIRE_{name.upper()}"] = str(value)
    return env


class ServiceProcess:
    """A runwire service as a child process; see the module docstring.

    ``argv`` follows the Python interpreter (``["-m", "runwire.cli.main",
    "serve", "tools"]``); ``name`` is what the service announces (``tools
    caught up``). Output goes to ``log_file`` when given, and is kept in
    :attr:`output` otherwise.
    """

    def __init__(
        self,
        name: str,
        settings: Settings,
        argv: Sequence[str],
        *,
        log_file: Path | None = None,
    ) -> None:
        self.name = name
        self._settings = settings
        self._argv = list(argv)
        self._log_file = log_file
        self.process: asyncio.subprocess.Process | None = None
        self.output: list[str] = []
        self._caught_up = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    def serve(cls, name: str, settings: Settings, *args: str, log_file: Path | None = None) -> Self:
        """``runwire serve NAME [ARGS]`` as a child process."""
        return cls(
            name, settings, ["-m", "runwire.cli.main", "serve", name, *args], log_file=log_file
        )

    async def start(self) -> None:
        self._caught_up.clear()
        stderr: Any = asyncio.subprocess.STDOUT
        if self._log_file is not None:
            self._log_file.parent.mkdir(parents=True, exist_ok=True)
            stderr = self._log_file.open("ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                *self._argv,
                env=settings_env(self._settings),
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        finally:
            if self._log_file is not None:
                stderr.close()
        self._reader = asyncio.create_task(self._read(self.process))

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.output.append(line)
            if line == f"{self.name} caught up":
                self._caught_up.set()

    async def wait_caught_up(self, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        """Wait for the ``caught up`` line; a clear error if the process died or hung."""
        waiter = asyncio.ensure_future(self._caught_up.wait())
        died = asyncio.ensure_future(self._exited())
        try:
            done, _ = await asyncio.wait(
                {waiter, died}, timeout=timeout, return_when="FIRST_COMPLETED"
            )
        finally:
            waiter.cancel()
            died.cancel()
        if waiter in done:
            return
        where = f" (log: {self._log_file})" if self._log_file else ""
        what = "exited" if died in done else f"did not catch up within {timeout:g}s"
        tail = "\n".join(self.output[-20:])
        raise RunwireError(f"service {self.name} {what}{where}" + (f":\n{tail}" if tail else ""))

    async def _exited(self) -> None:
        if self.process is not None:
            await self.process.wait()

    async def kill9(self) -> None:
        """SIGKILL: the crash no handler sees."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        await self._drain()

    async def stop(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        """SIGTERM and wait (SIGKILL after ``timeout``). Idempotent."""
        process = self.process
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(timeout):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        await self._drain()

    async def _drain(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)
