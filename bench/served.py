"""The four projectors a session benchmark needs, in this process or as ``runwire serve``.

- ``inline``: :func:`runwire.sessions.embedded.projectors_running`, on this
  process's event loop (what the tests use): their work competes with the
  timed calls for one loop.
- ``processes``: ``runwire serve projector-runs|sessions|transcripts|memory``,
  each its own process, as a deployment runs them; the block starts once
  every one has caught up.

Either way the block gets the prepared projections by name (for lag waits).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator

from runwire.projections.runtime.protocol import Projection
from runwire.sessions.embedded import projectors_running
from runwire.settings import Settings

NAMES = ("runs", "sessions", "transcripts", "memory")


def served_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWIRE_")}
    env.update(
        RUNWIRE_KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
        RUNWIRE_POSTGRES_DSN=settings.postgres_dsn,
        RUNWIRE_REDIS_URL=settings.redis_url,
        RUNWIRE_TOPIC_PREFIX=settings.topic_prefix,
        RUNWIRE_REDIS_KEY_PREFIX=settings.redis_key_prefix,
    )
    return env


@contextlib.asynccontextmanager
async def projectors(settings: Settings, mode: str) -> AsyncIterator[dict[str, Projection]]:
    if mode == "inline":
        async with projectors_running(settings) as projections:
            yield projections
        return
    if mode != "processes":
        raise ValueError(f"--projectors: inline or processes, not {mode!r}")
    async with projectors_running(settings, names=()) as projections:
        procs: list[asyncio.subprocess.Process] = []
        try:
            for name in NAMES:
                procs.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable,
                        "-m",
                        "runwire.cli.main",
                        "serve",
                        f"projector-{name}",
                        env=served_env(settings),
                        stdout=asyncio.subprocess.PIPE,
                        stderr=asyncio.subprocess.DEVNULL,
                    )
                )
            for proc in procs:
                assert proc.stdout is not None
                line = await asyncio.wait_for(proc.stdout.readline(), timeout=120)
                if b"caught up" not in line:
                    raise RuntimeError(f"a served projector said {line!r}, not 'caught up'")
            yield projections
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.terminate()
            for proc in procs:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(proc.wait(), timeout=20)
