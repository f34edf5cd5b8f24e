"""A three-node Kafka cluster with its own Postgres and Redis, for the fault tests.

- ``cluster`` (session): a :class:`LocalStack` with three Kafka nodes in its
  own home (``<test home>-cluster``, ``RUNWIRE_CLUSTER_TEST_HOME`` overrides)
  on its own ports, so its faults (nodes killed, Postgres and Redis
  restarted) never touch the shared test stack. Brought up once per test
  session (whatever of it was killed is restarted) and left running for the
  next, like the shared stack; ``RUNWIRE_HOME=<home> runwire stack down``
  stops it.
- ``cluster_settings`` (module): the cluster with a deployment of its own
  (topic prefix, Postgres schema, Redis keys), removed after the module.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from runwire.infra.isolation import isolated_deployment
from runwire.infra.stack import LocalStack, StackConfig
from runwire.infra.stack.process import port_in_use
from runwire.settings import Settings
from tests.conftest import stack_home

BROKERS = 3
STEP = 10
# Preferred ports, below the ephemeral range (an outgoing connection could take a
# port there while its server is down for a fault); others are picked (and kept in
# the home) when these are taken.
PORTS = {
    "kafka_port": 31092,
    "kafka_controller_port": 31093,
    "postgres_port": 31432,
    "redis_port": 31379,
}


def cluster_home() -> Path:
    default = stack_home().with_name(stack_home().name + "-cluster")
    return Path(os.environ.get("RUNWIRE_CLUSTER_TEST_HOME", default))


def _all_free(ports: dict[str, int]) -> bool:
    wanted = [ports["postgres_port"], ports["redis_port"]]
    for node in range(BROKERS):
        wanted += [ports["kafka_port"] + node * STEP, ports["kafka_controller_port"] + node * STEP]
    return len(set(wanted)) == len(wanted) and not any(port_in_use("127.0.0.1", p) for p in wanted)


def cluster_config(home: Path) -> StackConfig:
    """The cluster's config: the ports it was first given (kept in the home), else free ones."""
    kept = home / "test-ports.json"
    if kept.is_file():
        ports = json.loads(kept.read_text())
    else:
        ports = dict(PORTS)
        shift = 0
        while not _all_free(ports):
            shift += 500
            ports = {k: v - shift for k, v in PORTS.items()}
        home.mkdir(parents=True, exist_ok=True)
        kept.write_text(json.dumps(ports))
    return StackConfig(
        home=home,
        brokers=BROKERS,
        kafka_port_step=STEP,
        kafka_heap_min="128m",
        kafka_heap_max="512m",
        **ports,
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def cluster() -> LocalStack:
    stack = LocalStack(cluster_config(cluster_home()))
    await stack.up()
    return stack


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cluster_settings(cluster: LocalStack) -> AsyncIterator[Settings]:
    async with isolated_deployment(cluster.settings(), "c") as mine:
        yield mine
