"""What the session tests on the real stack need: the four projectors the
Session API reads, running in the background, and a started ``LogBackend``."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from urllib.parse import quote

import psycopg
import pytest_asyncio
import redis.asyncio as aioredis

from runwire.infra.topics import provision_topics
from runwire.projections.runtime.protocol import Projection
from runwire.sessions.embedded import projectors_running
from runwire.sessions.log_backend import LogBackend
from runwire.settings import Settings
from tests.conftest import _drop_topics


@contextlib.asynccontextmanager
async def another_stack(stack_settings: Settings) -> AsyncIterator[Settings]:
    """Settings for a second, empty deployment on the test stack (own topics, schema, keys),
    removed afterwards: what the ``settings`` fixture gives, once more in the same test."""
    tag = uuid.uuid4().hex[:10]
    schema = f"t_{tag}"
    separator = "&" if "?" in stack_settings.postgres_dsn else "?"
    other = stack_settings.model_copy(
        update={
            "topic_prefix": f"t{tag}.",
            "redis_key_prefix": f"t{tag}",
            "postgres_dsn": f"{stack_settings.postgres_dsn}{separator}"
            f"options={quote(f'-csearch_path={schema}')}",
        }
    )
    await provision_topics(other)
    try:
        yield other
    finally:
        await _drop_topics(other)
        async with await psycopg.AsyncConnection.connect(
            stack_settings.postgres_dsn, autocommit=True
        ) as conn:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        client = aioredis.Redis.from_url(other.redis_url)
        try:
            keys = [k async for k in client.scan_iter(match=f"{other.redis_key_prefix}:*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def projectors(settings: Settings) -> AsyncIterator[dict[str, Projection]]:
    async with projectors_running(settings) as projections:
        yield projections


@pytest_asyncio.fixture(loop_scope="session")
async def log_backend(
    settings: Settings, projectors: dict[str, Projection]
) -> AsyncIterator[LogBackend]:
    async with LogBackend(settings) as backend:
        yield backend
