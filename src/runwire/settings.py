"""One typed settings object, read once at the edge.

Values come from (highest first): constructor arguments, ``RUNWIRE_*``
environment variables, the addresses file the local stack writes
(``$RUNWIRE_HOME/stack.json``), then defaults. Pointing runwire at a remote
cluster is therefore only a matter of environment variables.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from runwire.errors import ConfigurationError


def default_home() -> Path:
    return Path(os.environ.get("RUNWIRE_HOME", Path.home() / ".runwire")).expanduser()


def default_cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))
    return Path(os.environ.get("RUNWIRE_CACHE_DIR", Path(xdg) / "runwire")).expanduser()


STACK_FILE_NAME = "stack.json"


class StackFileSource(PydanticBaseSettingsSource):
    """Reads the addresses the local stack wrote when it came up."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        path = default_home() / STACK_FILE_NAME
        self._data: dict[str, Any] = {}
        if path.is_file():
            try:
                self._data = json.loads(path.read_text())
            except (OSError, ValueError):
                self._data = {}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


class Settings(BaseSettings):
    """Everything a runwire process needs to reach its servers and behave."""

    model_config = SettingsConfigDict(env_prefix="RUNWIRE_", extra="ignore", frozen=True)

    # Where the servers are.
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    postgres_dsn: str = "postgresql://runwire@127.0.0.1:15432/runwire"
    redis_url: str = "redis://127.0.0.1:16379/0"
    # A Confluent-API schema registry (Confluent, Karapace, Redpanda). When set,
    # publishers write the Confluent wire format and register their schemas;
    # readers decode both framings either way (docs/wire-format.md).
    schema_registry_url: str | None = None
    schema_registry_username: str | None = None
    schema_registry_password: SecretStr | None = None
    schema_registry_timeout_seconds: float = Field(default=2.0, gt=0)

    # Local stack.
    home: Path = Field(default_factory=default_home)
    cache_dir: Path = Field(default_factory=default_cache_dir)

    # Topics. A prefix lets several deployments (or test runs) share a cluster.
    topic_prefix: str = ""
    run_events_topic: str = "runwire.run-events"
    session_events_topic: str = "runwire.session-events"
    memory_topic: str = "runwire.memory"
    checkpoints_topic: str = "runwire.checkpoints"
    live_topic: str = "runwire.live"
    dead_letters_topic: str = "runwire.dead-letters"
    # Per cluster, not per topic: 1 on the local stack, 3 and 2 on a real cluster.
    topic_replication_factor: int = Field(default=1, ge=1)
    topic_min_insync_replicas: int | None = Field(default=None, ge=1)

    # Publisher.
    client_id: str = "runwire"
    # No linger: an interactive write (a message, an answer) goes out at once,
    # and under load records still batch while a request is in flight; lz4 is
    # the cheapest codec per byte (gzip cost both latency and throughput).
    producer_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "lz4"
    producer_linger_ms: int = 0
    producer_max_batch_bytes: int = 1_048_576
    max_event_bytes: int = 900_000

    # Sealing (docs/sealing.md): each session's events encrypted with its own
    # data key, erasure by destroying it. Off by default: on, the key file
    # (the key-encryption key) must be provisioned and backed up like the log,
    # since without it nothing sealed can be read again.
    sealing: bool = False
    sealing_key_file: Path | None = None  # unset: <home>/sealing-keys.json
    sealing_key_cache_seconds: float = Field(default=60.0, ge=0)

    # Tenants (docs/tenants.md): the tenant this process writes as, its
    # credential. Set, every event it publishes carries it (an event naming
    # another tenant is refused); unset, the process writes for any tenant
    # (the shared services, which pass on the tenant of the run they serve).
    tenant: str | None = None
    # Readers of a process without a tenant read the rows (and cache keys)
    # without one; an operator's process that reads every tenant's says so
    # (docs/tenants.md). Never with a tenant.
    admin: bool = False

    # Projections.
    redis_key_prefix: str = "rw"
    transcript_ttl_seconds: int | None = None

    # Orchestrator.
    model_provider: Literal["local", "openai", "anthropic", "bedrock"] = "local"
    model_name: str = "runwire-local-1"
    provider_base_url: str | None = None
    provider_api_key: str | None = None
    thinking_enabled: bool = True
    model_timeout_seconds: float = 60.0
    model_max_retries: int = 4
    max_turns: int = 16
    agents_file: Path | None = None  # agents from configuration (TOML), ``--agents FILE``
    # Live views (docs/wire-format.md): the model streams and its deltas, and tool
    # execution start/end, are published on the live topic.
    live_events: bool = True
    watchdog_stall_seconds: float = 900.0  # a pending/running run idle this long is failed
    watchdog_tools_seconds: float | None = None  # awaiting_tools likewise, only when set

    # Usage analytics (docs/usage.md): the price of each model per million
    # tokens, from a TOML file and/or ``RUNWIRE_USAGE_PRICES`` (JSON, its
    # models win); a model without a price has an unknown cost, never zero.
    usage_prices_file: Path | None = None
    usage_prices: dict[str, dict[str, Decimal]] = Field(default_factory=dict)
    usage_currency: str = "USD"

    # HTTP API: comma-separated ``KEY:USER_ID`` (``KEY:USER_ID:read`` for read-only keys).
    api_keys: SecretStr | None = None
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=0, le=65535)
    # HMAC key of the API's page tokens: API instances behind one address share it (unset: random).
    api_page_secret: SecretStr | None = Field(default=None, min_length=16)

    # Operations: ``/metrics``, ``/healthz``, ``/readyz`` of a ``runwire serve`` process (unset: off).
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)

    def topic(self, name: str) -> str:
        """The full name of a topic, prefix included."""
        return f"{self.topic_prefix}{name}"

    def topic_for(self, topic_id: str) -> str:
        """The full name of the topic with logical id ``topic_id`` (``run_events``, ...)."""
        field = f"{topic_id}_topic"
        if field not in type(self).model_fields:
            raise ConfigurationError(f"no setting {field!r} names the topic {topic_id!r}")
        return self.topic(str(getattr(self, field)))

    @property
    def run_events(self) -> str:
        return self.topic(self.run_events_topic)

    @property
    def session_events(self) -> str:
        return self.topic(self.session_events_topic)

    @property
    def memory(self) -> str:
        return self.topic(self.memory_topic)

    @property
    def checkpoints(self) -> str:
        return self.topic(self.checkpoints_topic)

    @property
    def live(self) -> str:
        return self.topic(self.live_topic)

    @property
    def dead_letters(self) -> str:
        return self.topic(self.dead_letters_topic)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, StackFileSource(settings_cls))
