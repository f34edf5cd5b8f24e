"""Where a string lies in a deployment: every topic partition, Postgres table, Redis key."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import redis.asyncio as aioredis
from aiokafka.structs import TopicPartition

from runwire.contract.codec import codec_for
from runwire.contract.events import Event
from runwire.contract.sealing import ErasedError
from runwire.log import clients
from runwire.settings import Settings


async def in_the_log(settings: Settings, needle: bytes) -> list[str]:
    """``topic/partition@offset`` of every record whose key, value or headers hold ``needle``."""
    found: list[str] = []
    for r in await records(settings, None):
        raw = b"".join([r.key or b"", r.value or b""] + [k.encode() + v for k, v in r.headers])
        if needle in raw:
            found.append(f"{r.topic}/{r.partition}@{r.offset}")
    return found


async def events_of(settings: Settings, topic: str) -> list[Event]:
    """The events of ``topic`` that decode (an erased session's records do not; tombstones
    have no value)."""
    codec = codec_for(settings)
    out = []
    for r in await records(settings, topic):
        if r.value is None:
            continue
        try:
            out.append(codec.decode(r.value))
        except ErasedError:
            continue
    return out


async def records(settings: Settings, topic: str | None) -> list[Any]:
    """Every record of ``topic`` (None: of every topic of the deployment), in full."""
    consumer = clients.consumer(settings, "byte-scan", auto_offset_reset="earliest")
    await consumer.start()
    found: list[Any] = []
    try:
        topics = (
            [topic]
            if topic
            else sorted(t for t in await consumer.topics() if t.startswith(settings.topic_prefix))
        )
        assert topics, "no topics of this deployment"
        tps = [
            TopicPartition(t, p)
            for t in topics
            for p in await clients.topic_partitions(consumer, t)
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        todo = {tp for tp in tps if ends[tp] > 0}
        while todo:
            batch = await asyncio.wait_for(consumer.getmany(timeout_ms=500), 30)
            for records in batch.values():
                found.extend(records)
            for tp in list(todo):
                if await consumer.position(tp) >= ends[tp]:
                    todo.discard(tp)
    finally:
        await consumer.stop()
    return found


async def in_postgres(settings: Settings, needle: bytes) -> list[str]:
    """``table`` of every row of this deployment's schema holding ``needle`` (text or bytes)."""
    found: list[str] = []
    async with await psycopg.AsyncConnection.connect(settings.postgres_dsn) as conn:
        tables = await (
            await conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            )
        ).fetchall()
        assert tables, "no tables in this deployment's schema"
        for (table,) in tables:
            rows = await (await conn.execute(f'SELECT t::text FROM "{table}" t')).fetchall()
            hexed = needle.hex()
            for (text,) in rows:
                if needle.decode() in text or hexed in text:  # bytea shows as \x<hex>
                    found.append(table)
    return found


async def in_redis(settings: Settings, needle: bytes) -> list[str]:
    """Every Redis key of this deployment whose name or value holds ``needle``."""
    client: Any = aioredis.Redis.from_url(settings.redis_url)  # bytes replies throughout
    found: list[str] = []
    try:
        async for key in client.scan_iter(match=f"{settings.redis_key_prefix}*"):
            kind = (await client.type(key)).decode()
            parts: list[bytes]
            if kind == "string":
                parts = [await client.get(key) or b""]
            elif kind == "hash":
                parts = [b"".join(kv) for kv in (await client.hgetall(key)).items()]
            elif kind == "list":
                parts = await client.lrange(key, 0, -1)
            elif kind == "set":
                parts = list(await client.smembers(key))
            elif kind == "zset":
                parts = [m for m, _ in await client.zrange(key, 0, -1, withscores=True)]
            elif kind == "stream":
                parts = [
                    b"".join(k + v for k, v in fields.items())
                    for _, fields in await client.xrange(key)
                ]
            else:
                raise AssertionError(f"a Redis key of a type the scan does not read: {kind}")
            if needle in key or any(needle in p for p in parts):
                found.append(key.decode())
    finally:
        await client.aclose()
    return found


async def nowhere(settings: Settings, *needles: bytes) -> bool:
    """True when no record, table row or Redis key of the deployment holds any needle
    (an ``AssertionError`` naming the first found otherwise: for ``assert_eventually``)."""
    for needle in needles:
        assert await in_the_log(settings, needle) == [], needle
        assert await in_postgres(settings, needle) == [], needle
        assert await in_redis(settings, needle) == [], needle
    return True
