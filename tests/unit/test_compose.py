"""docker-compose.yml can't run here (no Docker engine), so it is checked against
what can: the settings, the local stack's config and the topics file."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from runwire.infra.stack import StackConfig
from runwire.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return data


@pytest.fixture
def defaults(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("RUNWIRE_HOME", "/nonexistent")
    for name in list(os.environ):
        if name.startswith("RUNWIRE_") and name != "RUNWIRE_HOME":
            monkeypatch.delenv(name)
    return Settings()


def _published(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port, for ports published on loopback."""
    out = {}
    for entry in service["ports"]:
        host_ip, host_port, container_port = str(entry).split(":")
        assert host_ip == "127.0.0.1", "publish on loopback only, like the local stack"
        out[int(container_port)] = int(host_port)
    return out


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "use the mapping form of environment"
    return {k: str(v) for k, v in env.items()}


def test_host_ports_are_the_ones_default_settings_reach(
    compose: dict[str, Any], defaults: Settings
) -> None:
    services = compose["services"]
    stack = StackConfig(home=Path("/nonexistent"))
    kafka_host_port = int(defaults.kafka_bootstrap_servers.rsplit(":", 1)[1])
    assert kafka_host_port == stack.kafka_port
    assert kafka_host_port in _published(services["kafka"]).values()
    advertised = _env(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    assert f"localhost:{kafka_host_port}" in advertised

    pg = urlsplit(defaults.postgres_dsn)
    assert pg.port == stack.postgres_port
    assert _published(services["postgres"]) == {5432: pg.port}
    pg_env = _env(services["postgres"])
    assert pg_env["POSTGRES_USER"] == pg.username == stack.postgres_user
    assert pg_env["POSTGRES_DB"] == pg.path.lstrip("/") == stack.postgres_db

    redis = urlsplit(defaults.redis_url)
    assert redis.port == stack.redis_port
    assert _published(services["redis"]) == {6379: redis.port}


def test_kafka_is_the_pinned_release_in_kraft_mode(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{StackConfig(home=Path('/x')).kafka_version}"
    env = _env(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16


def test_redis_keeps_an_append_only_file(compose: dict[str, Any]) -> None:
    command = compose["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"


def test_stateful_services_have_healthchecks_and_named_volumes(compose: dict[str, Any]) -> None:
    for name in ("kafka", "postgres", "redis"):
        service = compose["services"][name]
        assert service["healthcheck"]["test"], name
        volume = service["volumes"][0].split(":")[0]
        assert volume in compose["volumes"], f"{name} keeps its data in a named volume"


def test_topics_are_provisioned_from_the_topics_file_once_kafka_is_healthy(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    topics = services["topics"]
    assert topics["command"] == ["runwire", "topics", "apply"]
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    # Nothing else creates topics behind the topics file's back.
    for name, service in services.items():
        assert not any(key.endswith("CREATE_TOPICS") for key in _env(service)), name
    brokers = 1
    assert int(_env(topics)["RUNWIRE_TOPIC_REPLICATION_FACTOR"]) <= brokers


def test_runwire_environment_names_real_settings_and_real_services(
    compose: dict[str, Any],
) -> None:
    fields = {f"RUNWIRE_{name.upper()}" for name in Settings.model_fields}
    services = compose["services"]
    internal = _env(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    for name, service in services.items():
        env = {k: v for k, v in _env(service).items() if k.startswith("RUNWIRE_")}
        assert set(env) <= fields, f"{name}: {set(env) - fields} are not settings"
        settings = Settings.model_validate(
            {k.removeprefix("RUNWIRE_").lower(): v for k, v in env.items()}
        )
        if "RUNWIRE_KAFKA_BOOTSTRAP_SERVERS" in env:
            assert f"//{settings.kafka_bootstrap_servers}" in internal
        if "RUNWIRE_POSTGRES_DSN" in env:
            dsn = urlsplit(settings.postgres_dsn)
            assert (dsn.hostname, dsn.port) == ("postgres", 5432)
        if "RUNWIRE_REDIS_URL" in env:
            url = urlsplit(settings.redis_url)
            assert (url.hostname, url.port) == ("redis", 6379)
