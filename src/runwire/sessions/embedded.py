"""The projectors the Session API reads, run inside this process.

In a deployment the projectors are services of their own (``runwire serve
projector-runs | -sessions | -transcripts | -memory``). A script, a notebook,
a test or a benchmark that wants sessions without starting those can run
them here instead::

    async with projectors_running(settings):
        async with AsyncSession(user_id="alice", settings=settings) as s:
            ...

Each projector joins its normal consumer group, so this shares the work with
(or takes over from) served ones, and leaves the read models exactly as they
would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection

from runwire.projections.memory.projection import MemoryProjection, memory_projector
from runwire.projections.runs.projection import RunsProjection
from runwire.projections.runtime.consumer import Projector, ProjectorOptions
from runwire.projections.runtime.pg import open_pool
from runwire.projections.runtime.protocol import Projection
from runwire.projections.sessions.projection import SessionsProjection
from runwire.projections.transcripts.service import open_projection
from runwire.settings import Settings

__all__ = ["QUICK", "projectors_running"]

QUICK = ProjectorOptions(session_timeout_ms=6000, heartbeat_interval_ms=500, poll_timeout_ms=100)
"""Options for short-lived projectors: quick to join, quick to notice a lost member."""


@contextlib.asynccontextmanager
async def projectors_running(
    settings: Settings,
    *,
    options: ProjectorOptions = QUICK,
    names: Collection[str] = ("runs", "sessions", "memory", "transcripts"),
) -> AsyncIterator[dict[str, Projection]]:
    """Run the runs, sessions, transcripts and memory projectors (those of them
    ``names`` lists) until the block ends; yields every projection by name (for
    rebuilds and waits), prepared."""
    async with contextlib.AsyncExitStack() as stack:
        pool = await open_pool(settings, max_size=6, name="runwire-embedded-projectors")
        stack.push_async_callback(pool.close)
        runs, sessions, memory = (
            RunsProjection(pool, settings),
            SessionsProjection(pool, settings),
            MemoryProjection(pool, settings),
        )
        projections: dict[str, Projection] = {
            "runs": runs,
            "sessions": sessions,
            "memory": memory,
            "transcripts": await stack.enter_async_context(open_projection(settings)),
        }
        unknown = set(names) - set(projections)
        if unknown:
            raise ValueError(f"no projector {sorted(unknown)}: choose among {sorted(projections)}")
        projectors = [
            memory_projector(memory, settings, options=options)
            if name == "memory"
            else Projector(projections[name], settings, options=options)
            for name in ("runs", "sessions", "memory", "transcripts")
            if name in names
        ]
        tasks: list[asyncio.Task[None]] = []
        try:
            for prepared in (runs, sessions, memory):
                await prepared.prepare()
            for projector in projectors:
                await projector.start()
                tasks.append(asyncio.create_task(projector.run(), name=projector.projection.name))
            yield projections
        finally:
            for projector in projectors:
                await projector.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
