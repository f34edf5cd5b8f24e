"""The OpenAI Agents SDK's sessions that runwire's session benchmarks compare with.

Each opens on the stack the benchmark runs on and is torn down by the exit
stack it is given (its keys, tables or file gone):

- :func:`sqlite_session`: ``SQLiteSession`` on a file (WAL).
- :func:`redis_session`: ``RedisSession`` on the stack's Redis, under the
  run's key prefix.
- :func:`sqlalchemy_session`: ``SQLAlchemySession`` on the stack's Postgres
  (psycopg 3, async), on tables of its own: the durable, server-backed peer.
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import redis.asyncio as aioredis
from agents import SQLiteSession
from agents.extensions.memory.redis_session import RedisSession
from agents.extensions.memory.sqlalchemy_session import SQLAlchemySession
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from runwire.settings import Settings


def sqlalchemy_url(dsn: str) -> str:
    """The stack's Postgres DSN as SQLAlchemy's psycopg 3 (async) URL."""
    rest = dsn.partition("://")[2]
    return f"postgresql+psycopg://{rest}"


def sqlite_session(
    stack: contextlib.ExitStack | contextlib.AsyncExitStack, folder: Path
) -> SQLiteSession:
    session = SQLiteSession(f"bench-{uuid.uuid4().hex}", folder / "agents.db")
    stack.callback(session.close)
    return session


async def redis_session(stack: contextlib.AsyncExitStack, settings: Settings) -> RedisSession:
    client = aioredis.Redis.from_url(settings.redis_url)
    stack.push_async_callback(client.aclose)
    session = RedisSession(
        f"bench-{uuid.uuid4().hex}",
        redis_client=client,
        key_prefix=f"{settings.redis_key_prefix}:agents",
    )
    stack.push_async_callback(session.clear_session)
    return session


async def sqlalchemy_session(
    stack: contextlib.AsyncExitStack, settings: Settings
) -> SQLAlchemySession:
    engine = create_async_engine(sqlalchemy_url(settings.postgres_dsn))
    tables = f"bench_{uuid.uuid4().hex[:8]}"

    async def drop_tables() -> None:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP TABLE IF EXISTS {tables}_messages"))
            await conn.execute(text(f"DROP TABLE IF EXISTS {tables}_sessions"))
        await engine.dispose()

    stack.push_async_callback(drop_tables)
    return SQLAlchemySession(
        f"bench-{uuid.uuid4().hex}",
        engine=engine,
        create_tables=True,
        sessions_table=f"{tables}_sessions",
        messages_table=f"{tables}_messages",
    )
