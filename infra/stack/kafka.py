"""Apache Kafka in KRaft mode: each node is both broker and controller.

Contract:
- One node by default (part ``kafka``, data in ``<home>/kafka``); with
  ``brokers=N`` a cluster of N nodes (parts ``kafka-1`` .. ``kafka-N``, data in
  ``<home>/kafka-<n>``), all voters of one controller quorum and formatted with
  one cluster id. Internal topics get min(3, N) replicas, and min.insync.replicas
  is 2 from three nodes up, so one node can die without losing an acknowledged
  write or stopping writes.
- The broker jars (``org.apache.kafka:kafka_2.13`` and its runtime
  dependencies, plus a log4j2 SLF4J binding so the broker logs to a file) are
  resolved once by the machine's Maven into a cache outside the repository;
  later runs reuse them and never touch the network.
- Storage is formatted on first start only; data survives stop and kill -9.
- :meth:`KafkaPart.wait_ready` returns only once the broker accepts a produce
  request with ``acks=all`` and a consumer group can join and commit, which on
  a new cluster means waiting until ``__consumer_offsets`` exists.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from runwire.errors import StackError
from runwire.infra.stack.config import StackConfig
from runwire.infra.stack.maven import resolve_jars
from runwire.infra.stack.process import (
    ProcessRecord,
    ensure_writable_dir,
    pid_alive,
    read_record,
    run,
    spawn_detached,
    tail,
    terminate,
    write_record,
)

MARKER = "kafka.Kafka"
PROBE_TOPIC = "runwire.stack-probe"
PROBE_GROUP = "runwire-stack-probe"
# The SLF4J binding: Kafka 4 logs through log4j2, whose core is already among its dependencies.
LOG_BINDING = ("org.apache.logging.log4j", "log4j-slf4j-impl", "2.24.3")

_LOG4J2 = """status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {log_dir}/server.log
appender.file.filePattern = {log_dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.state.name = state.change.logger
logger.state.level = warn
"""


class KafkaPart:
    """One local Kafka node: jars, configuration, format, process, readiness."""

    def __init__(
        self, config: StackConfig, node: int = 1, brokers: int = 1, cluster_id: str | None = None
    ) -> None:
        self.config = config
        self.node = node
        self.brokers = brokers
        self.cluster_id = cluster_id  # shared by every node of a cluster; one node makes its own
        self.name = "kafka" if brokers == 1 else f"kafka-{node}"
        self.dir = config.kafka_dir if brokers == 1 else config.home / self.name
        self.data_dir = self.dir / "data"
        self.log_dir = self.dir / "logs"
        self.record_file = self.dir / "kafka.json"
        self.properties_file = self.dir / "server.properties"
        self.log4j_file = self.dir / "log4j2.properties"
        self.console_log = self.log_dir / "console.log"

    # -- where it is --------------------------------------------------------

    @property
    def port(self) -> int:
        return _node_port(self.config.kafka_port, self.config, self.node)

    @property
    def controller_port(self) -> int:
        return _node_port(self.config.kafka_controller_port, self.config, self.node)

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.port}"

    @property
    def replication(self) -> int:
        """Replicas of the internal topics (and of the probe topic)."""
        return min(3, self.brokers)

    @property
    def min_insync(self) -> int:
        """Two from three nodes up: one node may die, no acknowledged write is lost."""
        return 2 if self.brokers >= 3 else 1

    @property
    def ports(self) -> dict[str, int]:
        return {
            "RUNWIRE_STACK_KAFKA_PORT": self.port,
            "RUNWIRE_STACK_KAFKA_CONTROLLER_PORT": self.controller_port,
        }

    def log_files(self) -> list[Path]:
        return [self.log_dir / "server.log", self.console_log]

    def running(self) -> ProcessRecord | None:
        record = read_record(self.record_file)
        if record is not None and pid_alive(record.pid, MARKER):
            return record
        return None

    # -- before anything starts ----------------------------------------------

    async def preflight(self) -> None:
        java = shutil.which(self.config.java)
        if java is None:
            raise StackError(
                f"Java not found ({self.config.java!r}); the Kafka broker needs Java 17 or newer",
                "apt-get install openjdk-17-jre-headless (or set JAVA_HOME / RUNWIRE_STACK_JAVA)",
            )
        out = await run(
            [java, "-version"],
            limit=30,
            what="java -version",
            fix="install a working Java 17+ (apt-get install openjdk-17-jre-headless)",
        )
        match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
        major = int(match.group(1)) if match else 0
        if major == 1 and match and match.group(2):
            major = int(match.group(2))
        if major < 17:
            raise StackError(
                f"Java {major or '?'} at {java} is too old; Kafka {self.config.kafka_version} needs 17+",
                "apt-get install openjdk-17-jre-headless (or set JAVA_HOME / RUNWIRE_STACK_JAVA)",
            )
        if not self.config.kafka_jars_dir.is_dir() and shutil.which(self.config.maven) is None:
            raise StackError(
                f"Maven not found ({self.config.maven!r}); it is needed once to fetch the Kafka"
                f" {self.config.kafka_version} broker jars from Maven Central",
                "apt-get install maven (or set RUNWIRE_STACK_MAVEN)",
            )
        ensure_writable_dir(self.dir, f"the Kafka data dir of {self.name}")

    async def ensure_jars(self) -> Path:
        """Resolve the broker jars into the cache (once); return the jars dir."""
        c = self.config
        return await resolve_jars(
            c,
            c.kafka_jars_dir,
            [("org.apache.kafka", f"kafka_{c.kafka_scala_version}", c.kafka_version), LOG_BINDING],
            name="kafka-broker-jars",
            expect=f"kafka_{c.kafka_scala_version}-*.jar",
            what=f"the Kafka {c.kafka_version} jars",
            then="run `runwire stack up` again",
        )

    # -- running -------------------------------------------------------------

    def _jvm(self, jars: Path) -> list[str]:
        java = shutil.which(self.config.java) or self.config.java
        return [
            java,
            f"-Xms{self.config.kafka_heap_min}",
            f"-Xmx{self.config.kafka_heap_max}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log4j_file}",
            f"-Dkafka.logs.dir={self.log_dir}",
            "-cp",
            str(jars / "*"),
        ]

    def _write_config(self) -> None:
        c = self.config
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log4j_file.write_text(_LOG4J2.format(log_dir=self.log_dir))
        voters = ",".join(
            f"{n}@{c.host}:{_node_port(c.kafka_controller_port, c, n)}"
            for n in range(1, self.brokers + 1)
        )
        replicas, min_isr = str(self.replication), str(self.min_insync)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{self.address},CONTROLLER://{c.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.address}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "offsets.topic.replication.factor": replicas,
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_isr,
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": min_isr,
            "min.insync.replicas": min_isr,
            "default.replication.factor": replicas,
            # A replica that falls behind (its node killed) leaves the ISR within
            # seconds, so writes go on with the others instead of waiting 30 s.
            "replica.lag.time.max.ms": "5000",
            "group.initial.rebalance.delay.ms": "0",
            # After a kill -9 the controller keeps the dead broker's registration until its
            # session times out, and the restarted broker waits for that: keep it short.
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "3000",
            # Topics come from infra/topics.toml, never from a typo in a producer.
            "auto.create.topics.enable": "false",
            # Two cores.
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "2",
            "log.cleaner.threads": "1",
        }
        self.properties_file.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    async def start(self) -> ProcessRecord:
        """Write the configuration, format storage on first start, spawn the broker."""
        jars = await self.ensure_jars()
        self._write_config()
        if not (self.data_dir / "meta.properties").is_file():
            await run(
                [
                    *self._jvm(jars),
                    "kafka.tools.StorageTool",
                    "format",
                    "--ignore-formatted",
                    "-t",
                    self.cluster_id or new_cluster_id(),
                    "-c",
                    str(self.properties_file),
                ],
                limit=120,
                what="formatting Kafka storage",
                fix=f"check {self.data_dir} (remove it to start from an empty broker)",
            )
        pid = await spawn_detached(
            [*self._jvm(jars), MARKER, str(self.properties_file)], self.console_log, self.dir
        )
        record = ProcessRecord(pid=pid, port=self.port, address=self.address)
        write_record(self.record_file, record)
        return record

    async def wait_ready(self, record: ProcessRecord, seconds: float) -> None:
        """Return once the broker takes produce requests and a consumer group can join."""
        deadline = time.monotonic() + seconds
        last_error: Exception | None = None
        with _quiet("aiokafka"):
            while time.monotonic() < deadline:
                if not pid_alive(record.pid, MARKER):
                    raise StackError(
                        f"the Kafka broker {self.name} exited while starting:"
                        f" {self._last_error_line()}",
                        f"see `runwire stack logs {self.name}`",
                    )
                try:
                    remaining = max(1.0, deadline - time.monotonic())
                    await asyncio.wait_for(
                        _probe(record.address, self.node, self.replication), remaining
                    )
                    return
                except Exception as e:  # anything the broker says before it is ready
                    last_error = e
                    await asyncio.sleep(0.25)
        raise StackError(
            f"Kafka at {record.address} was not ready after {seconds:.0f}s ({last_error!r})",
            f"see `runwire stack logs {self.name}`; raise RUNWIRE_STACK_READY_TIMEOUT on a slow"
            " machine",
        )

    def _last_error_line(self) -> str:
        for path in (self.console_log, self.log_dir / "server.log"):
            lines = [
                ln for ln in tail(path, 200).splitlines() if "ERROR" in ln or "Exception" in ln
            ]
            if lines:
                return lines[-1].strip()[:300]
        return "no error in its log"

    async def stop(self) -> bool:
        """Stop the broker (controlled shutdown); False when it was not running."""
        record = self.running()
        if record is None:
            return False
        await terminate(record.pid, MARKER, grace=60)
        self.record_file.unlink(missing_ok=True)
        return True


def _node_port(base: int, config: StackConfig, node: int) -> int:
    return base + (node - 1) * config.kafka_port_step


def new_cluster_id() -> str:
    """A Kafka cluster id: a random UUID in URL-safe base64 without padding."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


async def _probe(bootstrap: str, node: int, replicas: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        # A node of a cluster is ready once the quorum has it as a live broker
        # (a restarted node answers metadata before it is registered again).
        live = {b["node_id"] for b in (await admin.describe_cluster())["brokers"]}
        if node not in live:
            raise RuntimeError(f"node {node} is not among the live brokers {sorted(live)}")
        topics = await admin.describe_topics([PROBE_TOPIC])
        if not topics or topics[0]["error_code"] != 0:
            response = await admin.create_topics(
                [NewTopic(PROBE_TOPIC, 1, replicas, topic_configs={"retention.ms": "3600000"})]
            )
            code = response.to_object()["topic_errors"][0]["error_code"]
            if code not in (0, 36):  # 36: it already exists
                raise RuntimeError(f"creating the probe topic answered error {code}")
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, request_timeout_ms=5000
    )
    await producer.start()
    try:
        await producer.send_and_wait(PROBE_TOPIC, b"ready")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        PROBE_TOPIC,
        bootstrap_servers=bootstrap,
        group_id=PROBE_GROUP,
        auto_offset_reset="latest",
        enable_auto_commit=False,
        request_timeout_ms=5000,
    )
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=200)
        await consumer.commit()
    finally:
        await consumer.stop()


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Hide a library's warnings while it retries against a broker that is starting."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
