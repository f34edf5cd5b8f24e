"""Three Kafka nodes vs one, same run: throughput, publish→visible p99, recovery after a leader kill.

Both stacks are the project's own local stack (``runwire.infra.stack``), each
in its own home and on its own ports, started by this script when they do not
run (and left running): ``<base>/one`` with one broker and ``<base>/three``
with three (replication factor 3, ``min.insync.replicas=2``). ``--base``
defaults to ``.runwire/bench-cluster``.

- throughput: ``Publisher.publish_many`` of the same events, in chunks of
  1000, best of ``--repeat``; beside it raw aiokafka sending the same bytes
  (the transport limit of that cluster, measured in the same run).
- publish→visible: one run event published, then waited for in the runs
  projection (a projector running in this process), ``--serial`` times; p50
  and p99 of the whole round trip.
- recovery (three nodes only): while nothing else writes, ``kill -9`` of the
  node that leads partition 0 of the run-events topic, then at once one event
  to every partition; reported: the seconds until the last of them is
  acknowledged (the first successful publish to the dead leader's partitions)
  and until the runs projection has applied them all (caught up). The node is
  started again and waited for until it is back in every ISR.

    .venv/bin/python bench/bench_cluster.py [--events N] [--serial K] [--repeat R]

Writes bench/results/cluster.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from bench_codec import events as sample_events
from runwire.contract.events import Event, RunStarted
from runwire.contract.routing import record_headers, record_key, topic_for
from runwire.infra.isolation import isolated_deployment
from runwire.infra.stack import LocalStack, StackConfig
from runwire.log import Publisher
from runwire.log.clients import producer_options
from runwire.log.partitioner import partition_for
from runwire.projections.catalog import opener
from runwire.projections.runtime.consumer import ProjectorOptions
from runwire.projections.runtime.waiting import wait_for
from runwire.projections.serve import serve_projection
from runwire.settings import Settings

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]
CHUNK = 1_000
FAST = ProjectorOptions(session_timeout_ms=6000, heartbeat_interval_ms=500, poll_timeout_ms=50)
# Ports of the two stacks: below the ephemeral range, away from the default and test stacks.
BASE_PORT = {1: 22000, 3: 23000}


def stack(base: Path, brokers: int) -> LocalStack:
    home = base / ("one" if brokers == 1 else "three")
    return LocalStack(
        StackConfig(
            home=home,
            brokers=brokers,
            kafka_heap_max="512m",
            kafka_port=BASE_PORT[brokers] + 92,
            kafka_controller_port=BASE_PORT[brokers] + 93,
            postgres_port=BASE_PORT[brokers] + 432,
            redis_port=BASE_PORT[brokers] + 379,
        )
    )


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def throughput(settings: Settings, events: list[Event], repeat: int) -> dict[str, float]:
    publisher = Publisher(settings)
    raw = AIOKafkaProducer(**producer_options(settings))
    codec = publisher._codec  # the same bytes on both sides
    prepared = [
        (
            topic_for(e.stream, settings),
            codec.encode(e),
            record_key(e),
            record_headers(e, codec.writer_schema(e.type).fingerprint),
        )
        for e in events
    ]
    best_sdk = best_raw = 0.0
    async with publisher:
        await raw.start()
        try:
            for _ in range(repeat):
                begun = time.perf_counter()
                for i in range(0, len(events), CHUNK):
                    await publisher.publish_many(events[i : i + CHUNK])
                best_sdk = max(best_sdk, len(events) / (time.perf_counter() - begun))
                begun = time.perf_counter()
                for i in range(0, len(prepared), CHUNK):
                    futures = [
                        await raw.send(topic, value, key=key, headers=headers)
                        for topic, value, key, headers in prepared[i : i + CHUNK]
                    ]
                    await asyncio.gather(*futures)
                best_raw = max(best_raw, len(prepared) / (time.perf_counter() - begun))
        finally:
            await raw.stop()
    return {"publisher_events_per_s": round(best_sdk), "raw_events_per_s": round(best_raw)}


def run_event(run_id: str) -> Event:
    return Event.create(RunStarted(agent_id="bench"), run_id=run_id, producer="bench")


async def visible(settings: Settings, serial: int) -> dict[str, float]:
    """publish→visible in the runs projection, ``serial`` times one after the other."""
    latencies: list[float] = []
    async with Publisher(settings) as publisher, opener("runs")(settings) as projection:
        for _ in range(serial):
            begun = time.perf_counter()
            position = await publisher.publish(run_event(str(uuid.uuid4())))
            await wait_for(projection, position, timeout=30, first_poll=0.001, max_poll=0.005)
            latencies.append(time.perf_counter() - begun)
    return {
        "visible_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "visible_p99_ms": round(percentile(latencies, 99) * 1000, 1),
    }


def key_per_partition(partitions: int) -> list[str]:
    """A run id for every partition (the contract's partitioner)."""
    found: dict[int, str] = {}
    while len(found) < partitions:
        run_id = str(uuid.uuid4())
        found.setdefault(partition_for(run_id.encode(), list(range(partitions))), run_id)
    return [found[p] for p in range(partitions)]


async def recovery(cluster: LocalStack, settings: Settings) -> dict[str, Any]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        (topic,) = await admin.describe_topics([settings.run_events])
    finally:
        await admin.close()
    leaders = {p["partition"]: p["leader"] for p in topic["partitions"]}
    victim = leaders[0]
    led = sorted(p for p, node in leaders.items() if node == victim)
    async with Publisher(settings) as publisher, opener("runs")(settings) as projection:
        await publisher.publish(run_event(str(uuid.uuid4())))  # connected, metadata known
        await cluster.kill(cluster.kafka_nodes[victim - 1].name)
        begun = time.perf_counter()
        positions = await asyncio.gather(
            *(publisher.publish(run_event(k)) for k in key_per_partition(len(leaders)))
        )
        first_publish = time.perf_counter() - begun
        for position in positions:
            await wait_for(projection, position, timeout=120, max_poll=0.01)
        caught_up = time.perf_counter() - begun
    restarted = time.perf_counter()
    await cluster.start(cluster.kafka_nodes[victim - 1].name)
    back = time.perf_counter() - restarted
    return {
        "killed_node": victim,
        "partitions_it_led": len(led),
        "first_publish_s": round(first_publish, 2),
        "caught_up_s": round(caught_up, 2),
        "node_restart_s": round(back, 1),
    }


async def measure(
    cluster: LocalStack, events: list[Event], serial: int, repeat: int, kill: bool
) -> dict[str, Any]:
    async with isolated_deployment(cluster.settings(), "bench") as settings:
        stop, ready = asyncio.Event(), asyncio.Event()
        projector = asyncio.create_task(
            serve_projection("runs", settings, stop, options=FAST, on_caught_up=ready.set)
        )
        try:
            await asyncio.wait_for(ready.wait(), 120)
            out: dict[str, Any] = await throughput(settings, events, repeat)
            out |= await visible(settings, serial)
            if kill:
                out["recovery_after_leader_kill"] = await recovery(cluster, settings)
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await projector
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=13_000)
    parser.add_argument("--serial", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--base", type=Path, default=REPO / ".runwire" / "bench-cluster")
    args = parser.parse_args()

    one, three = stack(args.base, 1), stack(args.base, 3)
    for s in (one, three):
        await s.up()
    events = sample_events(max(1, args.events // 13))
    result: dict[str, Any] = {"events": len(events), "serial": args.serial}
    result["one_node"] = await measure(one, events, args.serial, args.repeat, kill=False)
    result["three_nodes"] = await measure(three, events, args.serial, args.repeat, kill=True)
    a, b = result["one_node"], result["three_nodes"]
    result["ratios"] = {
        "throughput_three_vs_one": round(
            b["publisher_events_per_s"] / a["publisher_events_per_s"], 2
        ),
        "raw_three_vs_one": round(b["raw_events_per_s"] / a["raw_events_per_s"], 2),
        "publisher_vs_raw_one": round(a["publisher_events_per_s"] / a["raw_events_per_s"], 2),
        "publisher_vs_raw_three": round(b["publisher_events_per_s"] / b["raw_events_per_s"], 2),
        "visible_p99_three_vs_one": round(b["visible_p99_ms"] / a["visible_p99_ms"], 2),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cluster.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
