"""`runwire stack` on a three-node cluster: each node shown, topics replicated, the count kept."""

from __future__ import annotations

import json

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from typer.testing import CliRunner

from runwire.cli.main import app
from runwire.errors import StackError
from runwire.infra.stack import LocalStack, StackConfig
from runwire.infra.topics import _describe_configs
from runwire.settings import Settings
from tests.helpers import assert_eventually


def test_status_json_shows_each_node_and_the_settings_name_them_all(cluster: LocalStack) -> None:
    cli = CliRunner(env={"RUNWIRE_HOME": str(cluster.config.home)})
    result = cli.invoke(app, ["stack", "status", "--json"])
    assert result.exit_code == 0, result.output
    parts = json.loads(result.output)
    assert set(parts) == {"kafka-1", "kafka-2", "kafka-3", "postgres", "redis"}
    assert all(part["running"] for part in parts.values())
    nodes = [parts[f"kafka-{n}"]["address"] for n in (1, 2, 3)]
    assert len(set(nodes)) == 3
    settings = cluster.settings()
    assert settings.kafka_bootstrap_servers.split(",") == nodes
    assert (settings.topic_replication_factor, settings.topic_min_insync_replicas) == (3, 2)
    # What services started with that home read: the stack file says the same.
    written = Settings.model_validate_json(cluster.stack_file.read_text())
    assert written.kafka_bootstrap_servers == settings.kafka_bootstrap_servers
    assert written.topic_replication_factor == 3


async def test_every_topic_has_three_replicas_and_needs_two_in_sync(
    cluster_settings: Settings,
) -> None:
    names = [cluster_settings.run_events, cluster_settings.session_events]
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster_settings.kafka_bootstrap_servers)
    await admin.start()
    try:

        async def replicated() -> bool:
            # Asked right after the topics were made, the broker asked may not know
            # them (or their configs) yet: ask again until it does.
            topics = await admin.describe_topics(names)
            for topic in topics:
                if topic["error_code"] or not topic["partitions"]:
                    return False
                assert {len(p["replicas"]) for p in topic["partitions"]} == {3}, topic
                assert all(p["leader"] in (1, 2, 3) for p in topic["partitions"]), topic
            try:
                configs = await _describe_configs(admin, names)
            except StackError:
                return False
            return all(
                configs.get(name, {}).get("min.insync.replicas", (None, 0))[0] == "2"
                for name in names
            )

        await assert_eventually(replicated, timeout=30)
    finally:
        await admin.close()


async def test_a_home_keeps_its_node_count(cluster: LocalStack) -> None:
    home = cluster.config.home
    assert LocalStack(StackConfig(home=home)).brokers == 3  # unset: what the home has
    before = {p.name: p.pid for p in cluster.status()}
    with pytest.raises(
        StackError, match=r"holds a Kafka of 3 node\(s\), not 1; fix: use --brokers 3"
    ):
        await LocalStack(StackConfig(home=home, brokers=1)).up()
    assert {p.name: p.pid for p in cluster.status()} == before
