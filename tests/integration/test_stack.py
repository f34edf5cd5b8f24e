"""The test stack's servers are real and answer as the design expects."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from runwire.infra.topics import load_topics, provision_topics
from runwire.settings import Settings
from tests.helpers import assert_eventually


async def test_a_record_goes_through_the_broker_and_a_group_commits(settings: Settings) -> None:
    run_id = str(uuid.uuid4()).encode()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        sent = await producer.send_and_wait(settings.run_events, b"hello", key=run_id)
    finally:
        await producer.stop()

    group = f"g-{uuid.uuid4().hex[:8]}"
    consumer = AIOKafkaConsumer(
        settings.run_events,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 30)
        await consumer.commit()
        committed = await consumer.committed(
            next(iter(consumer.assignment() & {record_tp(record)}))
        )
    finally:
        await consumer.stop()
    assert (record.key, record.value) == (run_id, b"hello")
    assert (record.partition, record.offset) == (sent.partition, sent.offset)
    assert committed == record.offset + 1


def record_tp(record: object) -> object:
    from aiokafka import TopicPartition

    return TopicPartition(record.topic, record.partition)  # type: ignore[attr-defined]


async def test_topics_have_the_declared_partitions_retention_and_cleanup(
    settings: Settings,
) -> None:
    specs = load_topics()
    names = {spec.id: settings.topic_for(spec.id) for spec in specs}
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        described = {t["topic"]: t for t in await admin.describe_topics(list(names.values()))}
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names.values()]
        )
    finally:
        await admin.close()
    configs = {
        resource["resource_name"]: {
            e["config_names"]: e["config_value"] for e in resource["config_entries"]
        }
        for response in responses
        for resource in response.to_object()["resources"]
    }
    for spec in specs:
        name = names[spec.id]
        assert len(described[name]["partitions"]) == spec.partitions, name
        for key, value in spec.config.items():
            assert configs[name][key] == value, (name, key)
    run_events = configs[names["run_events"]]
    assert len(described[names["run_events"]]["partitions"]) == 12
    assert (run_events["retention.ms"], run_events["cleanup.policy"]) == ("-1", "delete")
    assert configs[names["memory"]]["cleanup.policy"] == "compact"


async def test_provisioning_is_idempotent_reconciles_and_never_repartitions(
    settings: Settings,
) -> None:
    again = await provision_topics(settings)
    assert again.created == []
    assert again.reconciled == {}
    assert again.drift == []

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        # Someone shortens retention by hand and sets a config the file does not mention.
        await admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC,
                    settings.run_events,
                    {"retention.ms": "60000", "segment.ms": "3600000"},
                )
            ]
        )
        await assert_eventually(
            lambda: _configs_of(admin, settings.run_events, retention_ms="60000"), timeout=30
        )
        reconciled = await provision_topics(settings)
        current = await _configs_of(admin, settings.run_events)
    finally:
        await admin.close()
    # The by-hand alteration dropped cleanup.policy and retention.bytes too (AlterConfigs
    # replaces the dynamic set); the file's values come back, the operator's segment.ms stays.
    assert reconciled.reconciled[settings.run_events]["retention.ms"] == ("60000", "-1")
    assert current["retention.ms"] == "-1"
    assert current["cleanup.policy"] == "delete"
    assert current["segment.ms"] == "3600000"


async def _configs_of(
    admin: AIOKafkaAdminClient, topic: str, retention_ms: str | None = None
) -> dict[str, str]:
    response = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    entries = response[0].to_object()["resources"][0]["config_entries"]
    configs = {e["config_names"]: e["config_value"] for e in entries}
    if retention_ms is not None:
        assert configs["retention.ms"] == retention_ms
    return configs


async def test_a_partition_count_that_differs_is_reported_not_changed(
    stack_settings: Settings,
) -> None:
    other = stack_settings.model_copy(update={"topic_prefix": f"d{uuid.uuid4().hex[:8]}."})
    spec = next(s for s in load_topics() if s.id == "dead_letters")
    narrower = spec.model_copy(update={"partitions": 1})
    await provision_topics(other, [narrower])
    report = await provision_topics(other, [spec])
    admin = AIOKafkaAdminClient(bootstrap_servers=other.kafka_bootstrap_servers)
    await admin.start()
    try:
        topic = (await admin.describe_topics([other.dead_letters]))[0]
        await admin.delete_topics([other.dead_letters])
    finally:
        await admin.close()
    assert len(topic["partitions"]) == 1
    assert len(report.drift) == 1
    assert "has 1 partitions" in report.drift[0]


async def test_postgres_answers_in_the_tests_own_schema(settings: Settings) -> None:
    async with await psycopg.AsyncConnection.connect(settings.postgres_dsn) as conn:
        await conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        await conn.execute("INSERT INTO t VALUES (1)")
        cur = await conn.execute("SELECT current_schema(), count(*) FROM t GROUP BY 1")
        row = await cur.fetchone()
    assert row is not None
    assert row[0].startswith("t_")
    assert row[1] == 1


async def test_redis_answers(settings: Settings) -> None:
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        key = f"{settings.redis_key_prefix}:k"
        await client.set(key, "v")
        assert await client.get(key) == b"v"
        info = await client.info("persistence")
    finally:
        await client.aclose()
    assert info["aof_enabled"] == 1
