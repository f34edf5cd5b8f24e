"""Every projection by name: how to open it with its resources.

The CLI (``runwire serve projector-NAME``, ``runwire projections status |
rebuild NAME``) and tests find projections here. Adding a projection is one
line: ``CATALOG["name"] = opener``, where the opener is an async context
manager factory that, given settings, opens the projection's resources
(pool, client), prepares its store (migrations) and yields the projection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from runwire.errors import ConfigurationError
from runwire.projections.checkpoints.projection import open_checkpoints
from runwire.projections.memory.projection import open_memory
from runwire.projections.runtime.protocol import Projection
from runwire.projections.transcripts.service import open_projection as open_transcripts
from runwire.projections.usage.projection import open_usage
from runwire.settings import Settings

Opener = Callable[[Settings], AbstractAsyncContextManager[Projection]]


@asynccontextmanager
async def open_runs(settings: Settings) -> AsyncIterator[Projection]:
    from runwire.projections.runs.projection import RunsProjection
    from runwire.projections.runtime.pg import open_pool

    pool = await open_pool(settings, name="runwire-projector-runs")
    try:
        projection = RunsProjection(pool, settings)
        await projection.prepare()
        yield projection
    finally:
        await pool.close()


@asynccontextmanager
async def open_sessions(settings: Settings) -> AsyncIterator[Projection]:
    from runwire.projections.runtime.pg import open_pool
    from runwire.projections.sessions.projection import SessionsProjection

    pool = await open_pool(settings, name="runwire-projector-sessions")
    try:
        projection = SessionsProjection(pool, settings)
        await projection.prepare()
        yield projection
    finally:
        await pool.close()


CATALOG: dict[str, Opener] = {
    "runs": open_runs,
    "sessions": open_sessions,
    "transcripts": open_transcripts,
    "memory": open_memory,
    "checkpoints": open_checkpoints,
    "usage": open_usage,
}


def opener(name: str) -> Opener:
    """The opener of projection ``name``; a clear error listing the known ones otherwise."""
    try:
        return CATALOG[name]
    except KeyError:
        known = ", ".join(sorted(CATALOG))
        raise ConfigurationError(f"no projection named {name!r} (known: {known})") from None
