"""Wiring of the transcript-cache projector: one place builds it from settings.

``open_projection`` gives the projection on its own Redis client (the CLI's
``serve projector-transcripts`` and ``projections rebuild transcripts`` use
it); ``serve`` runs a projector in its consumer group until cancelled or
until ``stop`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import redis.asyncio as aioredis

from runwire.projections.runtime.consumer import Projector, ProjectorOptions
from runwire.projections.transcripts.projection import TranscriptProjection
from runwire.projections.transcripts.redis_store import RedisTranscriptStore
from runwire.settings import Settings

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def open_projection(settings: Settings) -> AsyncIterator[TranscriptProjection]:
    """The projection on a Redis client of its own, closed on exit."""
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        store = RedisTranscriptStore(
            client, settings.redis_key_prefix, ttl_seconds=settings.transcript_ttl_seconds
        )
        yield TranscriptProjection(store, settings)
    finally:
        await client.aclose()


async def serve(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    options: ProjectorOptions | None = None,
) -> None:
    """Run the transcripts projector until cancelled (or ``stop`` is set)."""
    async with (
        open_projection(settings) as projection,
        Projector(projection, settings, options=options) as projector,
    ):
        log.info(
            "projector %s: reading %s as group %s into Redis %s (prefix %r)",
            projection.name,
            ", ".join(projection.topics),
            projector.group_id,
            settings.redis_url,
            settings.redis_key_prefix,
        )
        run = asyncio.create_task(projector.run())
        waits: list[asyncio.Task[object]] = [run]
        if stop is not None:
            waits.append(asyncio.create_task(stop.wait()))
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if run in done:
                run.result()  # a projector that stopped on its own raises its error here
        finally:
            await projector.stop()
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)


def main(argv: list[str] | None = None) -> None:
    """``python -m runwire.projections.transcripts.service [--instance-id ID]``.

    Settings come from the environment (``RUNWIRE_*``). ``--instance-id``
    makes the instance a static member of its consumer group: restarted with
    the same id, it gets its partitions back at once instead of after the
    old member's session timeout.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="runwire-projector-transcripts")
    parser.add_argument("--instance-id", default=None, help="static group membership id")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    options = ProjectorOptions(group_instance_id=args.instance_id)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(Settings(), options=options))


if __name__ == "__main__":
    main()
