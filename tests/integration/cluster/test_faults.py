"""Faults under load on a three-node Kafka cluster: nothing acknowledged is lost.

Every consumer service runs as three processes. Under a bounded workload of
tool-using runs and session writes, one fault each: kill -9 of the node that
leads the busiest partitions (then it comes back), kill -9 of Postgres (then
it comes back), a Redis restart, kill -9 of one instance of every service. No service is
restarted by anyone. After each, the invariants of
:func:`tests.integration.cluster.load.check_invariants` hold, and the time to
recover (first acknowledged write; projections caught up) is printed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio

from runwire.client import Client
from runwire.infra.stack import LocalStack
from runwire.settings import Settings
from tests.integration.cluster.load import Fleet, busiest_leader, under_load, wait_in_sync

RUNS = 24
SESSIONS = 6
FAULT_AT = 8  # the fault comes after this many runs were acknowledged, the rest keep coming


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fleet(
    cluster_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Fleet]:
    fleet = Fleet(cluster_settings, tmp_path_factory.mktemp("fleet"))
    try:
        await fleet.start()
        yield fleet
    finally:
        await fleet.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def rw(cluster_settings: Settings) -> AsyncIterator[Client]:
    async with Client(cluster_settings) as client:
        yield client


async def _under_load(
    settings: Settings,
    fleet: Fleet,
    rw: Client,
    tag: str,
    fault: Callable[[], Awaitable[object]],
    heal: Callable[[], Awaitable[None]] | None = None,
) -> None:
    report = await under_load(
        settings, fleet, rw, tag, fault, heal, runs=RUNS, sessions=SESSIONS, fault_at=FAULT_AT
    )
    print(f"\n{report.line()}")
    report.assert_ridden_out()


async def test_kill_9_of_the_busiest_leader_then_it_comes_back(
    cluster: LocalStack, cluster_settings: Settings, fleet: Fleet, rw: Client
) -> None:
    killed: list[str] = []

    async def fault() -> None:
        node = await busiest_leader(cluster, cluster_settings)
        assert await cluster.kill(node) is not None
        killed.append(node)

    async def heal() -> None:
        await asyncio.sleep(2)
        await cluster.start(killed[0])

    await _under_load(cluster_settings, fleet, rw, "leader", fault, heal)
    await wait_in_sync(cluster_settings)


async def test_a_postgres_restart(
    cluster: LocalStack, cluster_settings: Settings, fleet: Fleet, rw: Client
) -> None:
    # A crash (kill -9 of the postmaster), the harsher restart: no goodbye to any client.
    async def crash() -> None:
        assert await cluster.kill("postgres") is not None

    async def heal() -> None:
        await asyncio.sleep(3)  # down long enough for every service to notice
        await cluster.start("postgres")

    await _under_load(cluster_settings, fleet, rw, "postgres", crash, heal)


async def test_a_redis_restart(
    cluster: LocalStack, cluster_settings: Settings, fleet: Fleet, rw: Client
) -> None:
    # A clean restart (SHUTDOWN flushes the append-only file): the scripts are gone after it.
    async def heal() -> None:
        await asyncio.sleep(3)
        await cluster.start("redis")

    await _under_load(cluster_settings, fleet, rw, "redis", cluster.redis.stop, heal)


async def test_kill_9_of_one_instance_of_every_service(
    cluster_settings: Settings, fleet: Fleet, rw: Client
) -> None:
    # The last test of the module: the two instances left take over, nobody restarts one.
    await _under_load(cluster_settings, fleet, rw, "instance", fleet.kill_one_of_each)
