"""A stack of its own, from nothing: up, reuse, down / up and kill -9 keep the data."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from runwire.infra.stack import LocalStack
from runwire.infra.stack.stack import UpReport
from runwire.infra.topics import load_topics
from runwire.settings import Settings
from tests.conftest import stack_config
from tests.helpers import assert_eventually


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fresh(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[LocalStack, UpReport]]:
    """A stack in an empty home on free ports, with the report of its first `up`."""
    stack = LocalStack(stack_config(tmp_path_factory.mktemp("lifecycle") / "home"))
    try:
        report = await stack.up()
        yield stack, report
    finally:
        await stack.down()


def _processes_under(home: Path) -> list[int]:
    """Pids of live processes whose command line mentions ``home`` (what a stack there runs)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if str(home) in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


async def _write_everywhere(settings: Settings) -> tuple[str, int, int]:
    """A Kafka record, a Postgres row and a Redis key, all tagged with one fresh mark."""
    mark = uuid.uuid4().hex
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        sent = await producer.send_and_wait(settings.run_events, mark.encode(), key=mark.encode())
    finally:
        await producer.stop()
    async with await psycopg.AsyncConnection.connect(settings.postgres_dsn) as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS marks (mark text PRIMARY KEY)")
        await conn.execute("INSERT INTO marks VALUES (%s)", (mark,))
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        await client.set(f"mark:{mark}", mark)
    finally:
        await client.aclose()
    return mark, sent.partition, sent.offset


async def _read_everywhere(settings: Settings, mark: str, partition: int, offset: int) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        tp = TopicPartition(settings.run_events, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        record = await asyncio.wait_for(consumer.getone(tp), 30)
    finally:
        await consumer.stop()
    assert record.value == mark.encode()
    async with await psycopg.AsyncConnection.connect(settings.postgres_dsn) as conn:
        cur = await conn.execute("SELECT count(*) FROM marks WHERE mark = %s", (mark,))
        assert await cur.fetchone() == (1,)
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        assert await client.get(f"mark:{mark}") == mark.encode()
    finally:
        await client.aclose()


async def test_up_from_nothing_starts_every_part_and_writes_the_addresses(
    fresh: tuple[LocalStack, UpReport],
) -> None:
    stack, first = fresh
    assert first.started == ["kafka", "postgres", "redis"]
    assert first.reused == []
    # Every topic topics.toml declares (the file is the one place they are named).
    assert sorted(first.topics.created) == sorted(spec.name for spec in load_topics())
    assert "runwire.run-events" in first.topics.created
    assert all(part.running for part in stack.status())
    written = Settings.model_validate_json(stack.stack_file.read_text())
    assert written.kafka_bootstrap_servers == stack.kafka.address
    assert written.postgres_dsn == stack.postgres.address
    assert written.redis_url == stack.redis.address


async def test_a_second_up_reuses_everything(fresh: tuple[LocalStack, UpReport]) -> None:
    stack, _ = fresh
    before = {p.name: p.pid for p in stack.status()}
    again = await stack.up()
    assert again.started == []
    assert again.reused == ["kafka", "postgres", "redis"]
    assert again.topics.created == []
    assert again.topics.reconciled == {}
    assert {p.name: p.pid for p in again.parts} == before


async def test_down_then_up_keeps_a_record_a_row_and_a_key(
    fresh: tuple[LocalStack, UpReport],
) -> None:
    stack, _ = fresh
    await stack.up()
    settings = stack.settings()
    mark, partition, offset = await _write_everywhere(settings)

    stopped = await stack.down()
    assert stopped == ["kafka", "postgres", "redis"]
    assert not any(part.running for part in stack.status())
    assert _processes_under(stack.config.home) == []

    report = await stack.up()
    assert report.started == ["kafka", "postgres", "redis"]
    await _read_everywhere(stack.settings(), mark, partition, offset)


async def test_a_broker_killed_with_kill_9_comes_back_with_its_data(
    fresh: tuple[LocalStack, UpReport],
) -> None:
    stack, _ = fresh
    await stack.up()
    settings = stack.settings()
    mark, partition, offset = await _write_everywhere(settings)
    record = stack.kafka.running()
    assert record is not None

    os.kill(record.pid, signal.SIGKILL)
    await assert_eventually(lambda: stack.kafka.running() is None, timeout=30)
    assert [p.name for p in stack.status() if not p.running] == ["kafka"]

    report = await stack.up()
    assert report.started == ["kafka"]
    assert report.reused == ["postgres", "redis"]
    await _read_everywhere(stack.settings(), mark, partition, offset)
