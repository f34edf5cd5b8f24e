"""How the local stack is laid out and where it listens.

Read once from ``RUNWIRE_STACK_*`` environment variables (plus ``RUNWIRE_HOME``
and ``RUNWIRE_CACHE_DIR`` for where data and downloads live); every value can
also be passed to the constructor, which is what the tests do.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from runwire.settings import default_cache_dir, default_home


def _default_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    return "java"


class StackConfig(BaseSettings):
    """Ports, directories and tool locations of the local stack."""

    model_config = SettingsConfigDict(env_prefix="RUNWIRE_STACK_", extra="ignore", frozen=True)

    home: Path = Field(default_factory=default_home)
    cache_dir: Path = Field(default_factory=default_cache_dir)
    host: str = "127.0.0.1"

    kafka_port: int = Field(default=19092, ge=1, le=65535)
    kafka_controller_port: int = Field(default=19093, ge=1, le=65535)
    # Kafka nodes (each broker and controller, KRaft combined mode). Unset, a home
    # keeps the count it was created with (1 for a new home). Node n listens on
    # the two Kafka ports plus (n - 1) * kafka_port_step.
    brokers: int = Field(default=1, ge=1, le=9)
    kafka_port_step: int = Field(default=10, ge=2, le=1000)
    postgres_port: int = Field(default=15432, ge=1, le=65535)
    redis_port: int = Field(default=16379, ge=1, le=65535)

    # Kafka: one pinned release, its jars resolved by the machine's Maven.
    kafka_version: str = "4.1.1"
    kafka_scala_version: str = "2.13"
    # Sized for a 2-core / 24 GB machine that also runs Postgres, Redis and the services.
    kafka_heap_min: str = Field(default="256m", pattern=r"^\d+[kmgKMG]$")
    kafka_heap_max: str = Field(default="1g", pattern=r"^\d+[kmgKMG]$")
    java: str = Field(default_factory=_default_java)
    maven: str = "mvn"
    maven_mirror: str | None = None  # a Maven Central mirror URL, when the machine needs one
    maven_repo_local: Path | None = None  # Maven's local repository (default ~/.m2/repository)

    postgres_bin_dir: Path | None = None  # default: the newest /usr/lib/postgresql/*/bin
    postgres_user: str = "runwire"
    postgres_db: str = "runwire"
    redis_server: str = "redis-server"

    ready_timeout: float = Field(default=120.0, gt=0)

    @field_validator("home", "cache_dir", "maven_repo_local")
    @classmethod
    def _absolute(cls, path: Path | None) -> Path | None:
        # Absolute, so that the servers (started in their own directories) find them.
        return path.expanduser().absolute() if path is not None else None

    @property
    def kafka_dir(self) -> Path:
        return self.home / "kafka"

    @property
    def cluster_file(self) -> Path:
        """Where a home of more than one Kafka node keeps its node count and cluster id."""
        return self.home / "kafka-cluster.json"

    @property
    def postgres_dir(self) -> Path:
        return self.home / "postgres"

    @property
    def redis_dir(self) -> Path:
        return self.home / "redis"

    @property
    def kafka_jars_dir(self) -> Path:
        return self.cache_dir / f"kafka_{self.kafka_scala_version}-{self.kafka_version}" / "libs"

    def find_postgres_bin_dir(self) -> Path | None:
        """The configured PostgreSQL bin dir, else the newest Debian one, else None."""
        if self.postgres_bin_dir is not None:
            return self.postgres_bin_dir
        candidates = sorted(
            Path("/usr/lib/postgresql").glob("*/bin/initdb"),
            key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
        )
        if candidates:
            return candidates[-1].parent
        initdb = shutil.which("initdb")
        return Path(initdb).resolve().parent if initdb else None
