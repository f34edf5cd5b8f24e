"""A deployment of its own on a shared stack: own topics, Postgres schema and Redis keys.

``async with isolated_deployment(base, "t") as settings:`` gives ``base``'s
servers with a fresh topic prefix, Postgres schema (the DSN's search_path)
and Redis key prefix, all made for the block and removed after it, so tests
and benchmarks on one stack never see each other's data.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from urllib.parse import quote

import psycopg
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient

from runwire.infra.topics import load_topics, provision_topics
from runwire.settings import Settings

__all__ = ["isolated_deployment"]

_UNLINK_BATCH = 1000


@contextlib.asynccontextmanager
async def isolated_deployment(base: Settings, name: str) -> AsyncIterator[Settings]:
    """``base`` with its own topics and keys (``name`` + a random tag) and schema (``name_`` + it)."""
    unique = uuid.uuid4().hex[:10]
    tag, schema = f"{name}{unique}", f"{name}_{unique}"
    separator = "&" if "?" in base.postgres_dsn else "?"
    dsn = f"{base.postgres_dsn}{separator}options={quote(f'-csearch_path={schema}')}"
    mine = base.model_copy(
        update={"topic_prefix": f"{tag}.", "redis_key_prefix": tag, "postgres_dsn": dsn}
    )
    async with await psycopg.AsyncConnection.connect(base.postgres_dsn, autocommit=True) as conn:
        await conn.execute(f'CREATE SCHEMA "{schema}"'.encode())
    try:
        await provision_topics(mine)
        yield mine
    finally:
        await _drop_topics(mine)
        async with await psycopg.AsyncConnection.connect(
            base.postgres_dsn, autocommit=True
        ) as conn:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'.encode())
        await _drop_keys(mine)


async def _drop_topics(settings: Settings) -> None:
    # Deleted, so a long-lived stack does not pile up partitions.
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        with contextlib.suppress(Exception):
            await admin.delete_topics([settings.topic_for(spec.id) for spec in load_topics()])
    finally:
        await admin.close()


async def _drop_keys(settings: Settings) -> None:
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{settings.redis_key_prefix}*")]
        for start in range(0, len(keys), _UNLINK_BATCH):
            await client.unlink(*keys[start : start + _UNLINK_BATCH])
    finally:
        await client.aclose()
