"""kill -9 of ``runwire serve projector-transcripts`` at random instants during
a load: after a restart Redis holds exactly what a clean rebuild gives."""

from __future__ import annotations

import asyncio
import functools
import os
import random
import signal
import sys
from pathlib import Path

import redis.asyncio as aioredis

from runwire.log import Publisher
from runwire.projections.transcripts.projection import TranscriptProjection
from runwire.projections.transcripts.redis_store import RedisTranscriptStore
from runwire.projections.transcripts.store import checksum
from runwire.settings import Settings
from tests.contract.transcript_store import dumped_transcripts
from tests.helpers import assert_eventually
from tests.integration.transcripts.conftest import running, store_for, wait_caught_up
from tests.support.transcript_workload import reference_transcripts, workload

KILLS = 6


async def applied(store: RedisTranscriptStore) -> int:
    return sum((await store.positions(0)).values())


async def applied_more(store: RedisTranscriptStore, than: int) -> bool:
    return await applied(store) > than


def projector_env(settings: Settings, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "RUNWIRE_HOME": str(home),  # no stack.json there: only these variables count
            "RUNWIRE_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "RUNWIRE_REDIS_URL": settings.redis_url,
            "RUNWIRE_POSTGRES_DSN": settings.postgres_dsn,
            "RUNWIRE_TOPIC_PREFIX": settings.topic_prefix,
            "RUNWIRE_REDIS_KEY_PREFIX": settings.redis_key_prefix,
        }
    )
    return env


async def start_projector(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "runwire.cli.main",
            "serve",
            "projector-transcripts",
            "--instance-id",
            "crash-test",
            env=env,
            stdout=out,
            stderr=out,
        )


async def test_kill_9_at_random_instants_then_restart_equals_a_clean_rebuild(
    settings: Settings, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    rng = random.Random(4242)
    events = workload(41, runs=200, sessions=30)
    store = store_for(redis_client, settings)
    progress: list[int] = []
    env = projector_env(settings, tmp_path)
    log = tmp_path / "projector.log"
    proc = await start_projector(env, log)
    kills = 0
    try:
        async with Publisher(settings) as publisher:

            async def load() -> None:
                # Slow while the kills go on (so every restart finds work), then the rest.
                for start in range(0, len(events), 25):
                    await publisher.publish_many(events[start : start + 25])
                    if kills < KILLS:
                        await asyncio.sleep(0.1)

            loading = asyncio.create_task(load())
            while kills < KILLS:
                # Kill while it applies: once its positions move, at a random instant.
                await assert_eventually(
                    functools.partial(applied_more, store, await applied(store)),
                    timeout=30,
                    interval=0.02,
                )
                await asyncio.sleep(rng.uniform(0, 0.3))
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
                kills += 1
                progress.append(await applied(store))
                proc = await start_projector(env, log)
            # A stalled broker fails here, with this message, not at the suite's timeout.
            await asyncio.wait_for(loading, timeout=120)
        await wait_caught_up(store, settings, timeout=90)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await proc.wait()
    assert kills == KILLS
    assert len(set(progress)) == KILLS  # every kill came after some progress of its own
    crashed = await store.dump(0)

    # A clean rebuild of the same log into another key prefix.
    clean_settings = settings.model_copy(
        update={"redis_key_prefix": settings.redis_key_prefix + "c"}
    )
    clean = store_for(redis_client, clean_settings)
    async with running(
        TranscriptProjection(clean, clean_settings), clean_settings, assignment="all"
    ):
        await wait_caught_up(clean, clean_settings)
    assert checksum(crashed) == checksum(await clean.dump(0))
    # ... and both are the pure fold.
    reference = reference_transcripts(events)
    assert dumped_transcripts(crashed) == reference
