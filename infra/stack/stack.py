"""The local stack as one thing: up, down, status, logs.

Contract:
- ``up`` is idempotent: parts that run are reused, the others are started;
  it returns only when every part answers (Kafka takes produce requests and
  group joins, Postgres answers a query, Redis a PING) and the topics of
  ``infra/topics.toml`` are provisioned.
- Everything that can be checked is checked before anything starts (tools,
  writable dirs, free ports); a part that fails later makes ``up`` stop what
  that same call started, so nothing half-started is left running.
- ``down`` stops what runs and keeps every byte of data; the next ``up``
  brings the same data back. A part killed with ``kill -9`` is restarted by
  the next ``up`` with its data.
- ``up`` writes the addresses to ``<home>/stack.json``, where
  :class:`runwire.settings.Settings` finds them.
- ``up`` and ``down`` hold a lock on the home, so concurrent calls queue.
- ``brokers=N`` (``runwire stack up --brokers N``) runs Kafka as N nodes,
  parts ``kafka-1`` .. ``kafka-N``; a home keeps the count it was created with
  (``<home>/kafka-cluster.json``), and asking another count of it is an error.
  The written settings then list every node and carry the topics' replication
  factor (min(3, N)) and min.insync.replicas (2 from three nodes up).
- ``kill NAME`` is ``kill -9`` of one part (its data stays; a fault to test);
  ``start NAME`` starts that one part again and waits until it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from runwire.errors import StackError
from runwire.infra.stack.config import StackConfig
from runwire.infra.stack.kafka import KafkaPart, new_cluster_id
from runwire.infra.stack.postgres import PostgresPart
from runwire.infra.stack.process import (
    ProcessRecord,
    ensure_writable_dir,
    port_in_use,
)
from runwire.infra.stack.redis import RedisPart
from runwire.infra.topics import ProvisionReport, provision_topics
from runwire.settings import STACK_FILE_NAME, Settings


class Part(Protocol):
    """One server of the stack."""

    name: str
    dir: Path
    record_file: Path  # present while the part runs, and after it died without `down`

    @property
    def address(self) -> str: ...

    @property
    def ports(self) -> dict[str, int]: ...

    def log_files(self) -> list[Path]: ...

    def running(self) -> ProcessRecord | None: ...

    async def preflight(self) -> None: ...

    async def start(self) -> ProcessRecord: ...

    async def wait_ready(self, record: ProcessRecord, seconds: float) -> None: ...

    async def stop(self) -> bool: ...


@dataclass(frozen=True)
class PartStatus:
    """One part as ``runwire stack status`` shows it."""

    name: str
    running: bool
    address: str
    pid: int | None
    data_dir: str

    def as_dict(self) -> dict[str, object]:
        return {
            "running": self.running,
            "address": self.address,
            "pid": self.pid,
            "data_dir": self.data_dir,
        }


@dataclass
class UpReport:
    """What ``up`` did: which parts it started, which it reused, the topics."""

    started: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    parts: list[PartStatus] = field(default_factory=list)
    topics: ProvisionReport = field(default_factory=ProvisionReport)


class LocalStack:
    """Kafka, PostgreSQL and Redis under one home directory."""

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.brokers, self.cluster_id, self._conflict = _kafka_layout(self.config)
        self.kafka_nodes = tuple(
            KafkaPart(self.config, node, self.brokers, self.cluster_id)
            for node in range(1, self.brokers + 1)
        )
        self.kafka = self.kafka_nodes[0]
        self.postgres = PostgresPart(self.config)
        self.redis = RedisPart(self.config)
        # Kafka first: its JVMs boot while the others start.
        self.parts: tuple[Part, ...] = (*self.kafka_nodes, self.postgres, self.redis)

    @property
    def stack_file(self) -> Path:
        return self.config.home / STACK_FILE_NAME

    def part(self, name: str) -> Part:
        for part in self.parts:
            if part.name == name:
                return part
        names = ", ".join(part.name for part in self.parts)
        raise StackError(f"no part named {name!r} in {self.config.home}", f"use one of {names}")

    # -- reading -------------------------------------------------------------

    def status(self) -> list[PartStatus]:
        out = []
        for part in self.parts:
            record = part.running()
            out.append(
                PartStatus(
                    name=part.name,
                    running=record is not None,
                    address=record.address if record else part.address,
                    pid=record.pid if record else None,
                    data_dir=str(part.dir),
                )
            )
        return out

    def settings(self) -> Settings:
        """Settings that point at this stack (its running addresses, else the configured ones).

        Everything else (topic prefix, ...) comes from the environment as usual.
        """
        addresses = {s.name: s.address for s in self.status()}
        return Settings(
            kafka_bootstrap_servers=",".join(addresses[k.name] for k in self.kafka_nodes),
            postgres_dsn=addresses["postgres"],
            redis_url=addresses["redis"],
            topic_replication_factor=self.kafka.replication,
            topic_min_insync_replicas=self.kafka.min_insync if self.brokers > 1 else None,
        )

    # -- changing ------------------------------------------------------------

    async def up(self) -> UpReport:
        """Start what is not running, wait until all of it answers, provision topics."""
        ensure_writable_dir(self.config.home, "the stack's data dir")
        if self._conflict is not None:
            raise StackError(*self._conflict)
        async with self._locked():
            self._write_cluster_file()
            report = UpReport()
            records = {part.name: part.running() for part in self.parts}
            to_start = [part for part in self.parts if records[part.name] is None]
            for part in to_start:
                await part.preflight()
            await self._check_ports(to_start)
            if any(node in to_start for node in self.kafka_nodes):
                await self.kafka.ensure_jars()
            started: list[Part] = []
            try:
                for part in to_start:
                    # Counted as started before it is: a start that fails half-way
                    # (a server up, its readiness not) is stopped too.
                    started.append(part)
                    records[part.name] = await part.start()
                for part in self.parts:
                    record = records[part.name]
                    assert record is not None
                    await part.wait_ready(record, self.config.ready_timeout)
                settings = self.settings()
                report.topics = await provision_topics(settings)
                self._write_stack_file(settings)
            except BaseException:
                for part in reversed(started):
                    with contextlib.suppress(Exception):
                        await part.stop()
                raise
            report.started = [p.name for p in started]
            report.reused = [p.name for p in self.parts if p not in started]
            report.parts = self.status()
            return report

    async def down(self) -> list[str]:
        """Stop every running part, keeping its data; return the names stopped."""
        if not self.config.home.is_dir():
            return []
        async with self._locked():
            # Kafka nodes together: stopped one by one, the last ones would wait
            # for a controller quorum that the first ones took away.
            kafka = await asyncio.gather(*(node.stop() for node in self.kafka_nodes))
            stopped = [node.name for node, was in zip(self.kafka_nodes, kafka, strict=True) if was]
            for part in (self.postgres, self.redis):
                if await part.stop():
                    stopped.append(part.name)
            return stopped

    async def kill(self, name: str) -> int | None:
        """``kill -9`` one part (a fault, for tests); its pid, or None when it was not running.

        Its data and its record stay, as after a crash; ``start`` or ``up`` brings it back.
        """
        part = self.part(name)
        record = part.running()
        if record is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signal.SIGKILL)
        for _ in range(600):  # the kernel tears a JVM down in well under 30 s
            if part.running() is None:
                break
            await asyncio.sleep(0.05)
        return record.pid

    async def start(self, name: str) -> bool:
        """Start one part when it is not running and wait until it answers; False when it ran."""
        if self._conflict is not None:
            raise StackError(*self._conflict)
        part = self.part(name)
        async with self._locked():
            record = part.running()
            started = record is None
            if record is None:
                await part.preflight()
                await self._check_ports([part])
                record = await part.start()
            await part.wait_ready(record, self.config.ready_timeout)
            return started

    async def _check_ports(self, parts: list[Part]) -> None:
        seen: dict[int, str] = {}
        for part in self.parts:
            for env, port in part.ports.items():
                if port in seen:
                    raise StackError(
                        f"{env} and {seen[port]} are both {port}",
                        "give every part of the stack its own port",
                    )
                seen[port] = env
        host = self.config.host
        for part in parts:
            # A part that just died (kill -9) may hold its ports for a moment while the
            # kernel tears its threads down: give it a few seconds before blaming others.
            grace = 10.0 if part.record_file.exists() else 0.0
            for env, port in part.ports.items():
                if await _port_taken(host, port, grace):
                    raise StackError(
                        f"port {port} on {host} ({part.name}) is already in use by another program",
                        f"stop that program or choose another port, e.g. {env}={_free_hint(port)}",
                    )

    def _write_stack_file(self, settings: Settings) -> None:
        data: dict[str, object] = {
            "kafka_bootstrap_servers": settings.kafka_bootstrap_servers,
            "postgres_dsn": settings.postgres_dsn,
            "redis_url": settings.redis_url,
        }
        if self.brokers > 1:
            data["topic_replication_factor"] = settings.topic_replication_factor
            data["topic_min_insync_replicas"] = settings.topic_min_insync_replicas
        tmp = self.stack_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(self.stack_file)

    def _write_cluster_file(self) -> None:
        path = self.config.cluster_file
        if self.brokers > 1 and not path.exists():
            data = {"brokers": self.brokers, "cluster_id": self.cluster_id}
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=2) + "\n")
            tmp.replace(path)

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        with (self.config.home / ".lock").open("a") as f:
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(0.1)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def _kafka_layout(config: StackConfig) -> tuple[int, str | None, tuple[str, str] | None]:
    """Kafka nodes of this home, the cluster id, and why the asked count cannot be had.

    A home keeps the node count it was created with: the nodes were formatted
    as one quorum, and moving data between layouts is not something ``up`` guesses.
    """
    asked = config.brokers if "brokers" in config.model_fields_set else None
    stored: dict[str, object] = {}
    try:
        stored = json.loads(config.cluster_file.read_text())
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as e:
        return 1, None, (f"{config.cluster_file} is unreadable ({e})", "restore or remove it")
    if stored:
        have, cluster_id = int(str(stored["brokers"])), str(stored["cluster_id"])
    elif (config.kafka_dir / "data" / "meta.properties").is_file():
        have, cluster_id = 1, None
    else:
        wanted = asked or 1
        return wanted, (new_cluster_id() if wanted > 1 else None), None
    if asked is not None and asked != have:
        return (
            have,
            cluster_id,
            (
                f"{config.home} holds a Kafka of {have} node(s), not {asked}",
                f"use --brokers {have}, or another RUNWIRE_HOME for a {asked}-node stack",
            ),
        )
    return have, cluster_id, None


async def _port_taken(host: str, port: int, grace: float) -> bool:
    """True when ``port`` is still taken after waiting up to ``grace`` seconds."""
    deadline = time.monotonic() + grace
    while port_in_use(host, port):
        if time.monotonic() >= deadline:
            return True
        await asyncio.sleep(0.2)
    return False


def _free_hint(port: int) -> int:
    """A nearby port that is free now, to suggest in the error message."""
    for candidate in range(port + 100, port + 1100, 100):
        if candidate < 65536 and not port_in_use("127.0.0.1", candidate):
            return candidate
    return port + 1
