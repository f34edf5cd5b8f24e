"""Builds and runs the Java foreign producer (``ForeignProducer.java``) for the tests.

Contract:
- Its libraries: ``kafka-clients`` and its compression jars come from the Kafka
  jars the local stack already resolved (``StackConfig.kafka_jars_dir``);
  Apache Avro and its dependencies (Jackson among them) are resolved once by
  the machine's Maven into ``<cache_dir>/foreign-producer/avro-<version>/libs``,
  the same way and with the same mirror settings as the stack's Kafka jars.
- The program is compiled once per source digest into
  ``<cache_dir>/foreign-producer/classes-<digest>``; later runs reuse it.
- :func:`produce` feeds a plan (one JSON object per event) to the program
  and returns what it reports per event (event id, type, topic, partition,
  offset). A failure raises ``ForeignProducerError`` with the program's
  output.
- Nothing of runwire's Python code reaches the program: it gets the
  bootstrap address, the schemas folder and three topic names.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runwire.infra.stack import StackConfig
from runwire.infra.stack.maven import resolve_jars
from runwire.settings import Settings

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "ForeignProducer.java"
SCHEMAS = HERE.parents[1] / "schemas"
AVRO_VERSION = "1.12.2"
# From the broker's jars: the client and the codecs it may load for compression.
KAFKA_JARS = ("kafka-clients-", "lz4-java-", "snappy-java-", "zstd-jni-")


class ForeignProducerError(RuntimeError):
    """The foreign producer could not be built or failed; the message has its output."""


@dataclass(frozen=True)
class Published:
    """Where the foreign producer's event landed."""

    event_id: str
    type: str
    topic: str
    partition: int
    offset: int


def _run(
    argv: Sequence[str], what: str, *, stdin: str | None = None, cwd: Path | None = None
) -> str:
    done = subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, cwd=cwd, timeout=600, check=False
    )
    if done.returncode != 0:
        raise ForeignProducerError(
            f"{what} failed (exit {done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )
    return done.stdout


def avro_jars(config: StackConfig) -> Path:
    """Apache Avro's runtime jars, resolved once into the cache; the folder."""
    return asyncio.run(
        resolve_jars(
            config,
            config.cache_dir / "foreign-producer" / f"avro-{AVRO_VERSION}" / "libs",
            [("org.apache.avro", "avro", AVRO_VERSION)],
            name="foreign-producer-jars",
            expect="avro-*.jar",
            what=f"Apache Avro {AVRO_VERSION}",
        )
    )


def classpath(config: StackConfig) -> list[Path]:
    """The program's libraries: Avro's jars, then the Kafka client's."""
    kafka = config.kafka_jars_dir
    if not kafka.is_dir():
        raise ForeignProducerError(f"no Kafka jars at {kafka}: bring the local stack up once")
    jars = sorted(avro_jars(config).glob("*.jar"))
    for prefix in KAFKA_JARS:
        found = sorted(kafka.glob(f"{prefix}*.jar"))
        if not found:
            raise ForeignProducerError(f"no {prefix}*.jar in {kafka}")
        jars += found
    return jars


def compiled(config: StackConfig) -> tuple[Path, list[Path]]:
    """The compiled program's folder (built once per source) and its classpath."""
    jars = classpath(config)
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    classes = config.cache_dir / "foreign-producer" / f"classes-{digest}"
    if not (classes / "ForeignProducer.class").is_file():
        staging = classes.with_name(f"{classes.name}.partial-{uuid.uuid4().hex[:8]}")
        javac = shutil.which("javac")
        if javac is None:
            raise ForeignProducerError("javac not found: install a JDK 17+")
        try:
            cp = ":".join(str(j) for j in jars)
            _run([javac, "-d", str(staging), "-cp", cp, str(SOURCE)], "javac ForeignProducer")
            staging.replace(classes)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return classes, jars


def produce_sync(settings: Settings, plan: Sequence[Mapping[str, Any]]) -> list[Published]:
    """Publish ``plan`` with the Java producer; what it reports, one per event in order."""
    config = StackConfig()
    classes, jars = compiled(config)
    java = shutil.which(config.java) or config.java
    argv = [
        java,
        "-XX:TieredStopAtLevel=1",
        "-Xshare:auto",
        "-cp",
        ":".join(str(p) for p in [classes, *jars]),
        "ForeignProducer",
        settings.kafka_bootstrap_servers,
        str(SCHEMAS),
        settings.run_events,
        settings.session_events,
        settings.memory,
    ]
    stdin = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in plan)
    out = _run(argv, "the Java foreign producer", stdin=stdin)
    return [Published(**json.loads(line)) for line in out.splitlines() if line.startswith("{")]


async def produce(settings: Settings, plan: Sequence[Mapping[str, Any]]) -> list[Published]:
    """:func:`produce_sync` off the event loop."""
    return await asyncio.to_thread(produce_sync, settings, plan)
