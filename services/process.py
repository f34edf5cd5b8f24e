"""Running a service as a process: signals, logging, options (``python -m runwire.services.X``).

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
- Prints one line ``<name> caught up`` on stdout once every assigned
  partition has been read to its end, so a supervisor can wait for it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import Any, Literal

from runwire.errors import ConfigurationError, RunwireError
from runwire.services.follower import FollowerOptions
from runwire.settings import Settings

__all__ = ["ServiceName", "run_service", "serve"]

ServiceName = Literal["orchestrator", "tools"]


def _parser(name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m runwire.services.{name}")
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
            settings, provider=provider, follower_options=options
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
    logging.basicConfig(
        level=args.log_level.upper(),
        format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(
            name,
            Settings(),
            stop,
            instance_id=args.instance_id,
            local_latency=args.local_latency,
            tool_latency=args.tool_latency,
            max_records=args.max_records,
        )

    try:
        asyncio.run(main())
    except RunwireError as e:
        print(f"runwire {name}: error: {e}", file=sys.stderr)
        return 1
    return 0
