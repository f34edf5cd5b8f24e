"""Fixtures for tests that need the real servers.

The test stack is the project's own local stack in ``<repo>/.runwire/test``
(``RUNWIRE_TEST_HOME`` overrides), on its own ports, brought up once per test
session (reused when it already runs, e.g. by another test session) and left
running for the next one; `runwire stack down` with ``RUNWIRE_HOME`` set to
that directory stops it.

- ``stack_settings`` (session): Settings pointing at the running test stack.
- ``settings`` (per test): the same with a fresh topic prefix (its topics
  provisioned from infra/topics.toml), a fresh Redis key prefix and a fresh
  Postgres schema (search_path), so tests never see each other's data; all
  three are removed after the test.
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from runwire.infra.isolation import isolated_deployment
from runwire.infra.stack import LocalStack, StackConfig
from runwire.infra.stack.process import port_in_use
from runwire.settings import Settings

# Shared suites and helpers live outside test modules: have pytest explain their asserts too.
pytest.register_assert_rewrite(
    "tests.contract",
    "tests.helpers",
    "tests.contract.projections",
    "tests.contract.transcript_store",
)

REPO = Path(__file__).resolve().parents[1]
# Preferred ports of the test stack; a free one is picked when one is taken.
TEST_PORTS = {
    "kafka_port": 29092,
    "kafka_controller_port": 29093,
    "postgres_port": 25432,
    "redis_port": 26379,
}


def stack_home() -> Path:
    return Path(os.environ.get("RUNWIRE_TEST_HOME", REPO / ".runwire" / "test"))


def free_port(avoid: set[int] | None = None) -> int:
    """A free loopback port below the ephemeral range, and not one of ``avoid``.

    Ports from the ephemeral range (what binding port 0 gives) can be taken by any
    outgoing connection while a test has its server down, so a restart would fail.
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    while True:
        port = random.randrange(20000, max(20001, low - 1))
        if port not in (avoid or set()) and not port_in_use("127.0.0.1", port):
            return port


def stack_config(home: Path, preferred: dict[str, int] | None = None) -> StackConfig:
    """A stack config for ``home`` on the preferred ports, or free ones where those are taken.

    A stack that already runs in ``home`` is reused on whatever ports it has.
    """
    chosen: set[int] = set()

    def pick(name: str) -> int:
        port = (preferred or {}).get(name)
        if port is None or port in chosen or port_in_use("127.0.0.1", port):
            port = free_port(chosen)
        chosen.add(port)
        return port

    return StackConfig(
        home=home,
        kafka_port=pick("kafka_port"),
        kafka_controller_port=pick("kafka_controller_port"),
        postgres_port=pick("postgres_port"),
        redis_port=pick("redis_port"),
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def local_stack() -> LocalStack:
    """The session's test stack, up and answering."""
    stack = LocalStack(stack_config(stack_home(), TEST_PORTS))
    await stack.up()
    return stack


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def stack_settings(local_stack: LocalStack) -> Settings:
    return local_stack.settings()


@pytest_asyncio.fixture(loop_scope="session")
async def settings(stack_settings: Settings) -> AsyncIterator[Settings]:
    """Settings of the test stack with this test's own topics, keys and schema."""
    async with isolated_deployment(stack_settings, "t") as mine:
        yield mine


@pytest.fixture
def spans() -> Iterator[Any]:
    """Tracing on for this test, every span kept by an in-memory exporter (yielded)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from runwire.telemetry import tracing
    from runwire.telemetry.otel import Tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(Tracing(provider))
    try:
        yield exporter
    finally:
        tracing.disable()
        provider.shutdown()
