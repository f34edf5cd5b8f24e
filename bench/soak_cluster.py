"""The cluster soak: mixed load on three Kafka nodes, a fault every two minutes, the invariants.

Opt-in (not part of any test suite): it takes ``--minutes`` (30 by default).
It brings up (or reuses) a three-node local stack of its own
(``--home``, default ``.runwire/soak-cluster``, on ports 24xxx), runs every
consumer service as three processes, and then, round after round until the
time is up, drives tool-using runs and session writes for ``--every``
seconds with one fault thrown half-way, in turn:

1. ``kill -9`` of the node leading the busiest partitions, started again 5 s later;
2. a Postgres restart (down 5 s);
3. a Redis restart (down 5 s);
4. ``kill -9`` of one instance of every service (the other two take over;
   the killed ones are started again after the round, as a supervisor would).

After every round the invariants of ``tests/integration/cluster/load.py``
are checked (every run ended, one answer per delta, every acknowledged write
in the log and in every projection, projections equal a clean rebuild, lag
0), and the round's recovery times are recorded. The first broken invariant
stops the soak with exit code 1.

    .venv/bin/python bench/soak_cluster.py [--minutes 30] [--every 120] [--rate 2]

Writes bench/results/soak_cluster.json (every round's fault and recovery
times, and the totals).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.integration.cluster.load import Fleet, busiest_leader, under_load, wait_in_sync

from runwire.client import Client
from runwire.infra.isolation import isolated_deployment
from runwire.infra.stack import LocalStack, StackConfig
from runwire.settings import Settings

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]
DOWN = 5.0  # seconds a restarted server stays down

Fault = tuple[str, Callable[[], Awaitable[object]], Callable[[], Awaitable[None]] | None]


def faults(stack: LocalStack, settings: Settings, fleet: Fleet) -> list[Fault]:
    killed: list[str] = []

    async def kill_leader() -> None:
        killed[:] = [await busiest_leader(stack, settings)]
        await stack.kill(killed[0])

    async def restart_leader() -> None:
        await asyncio.sleep(DOWN)
        await stack.start(killed[0])

    async def pg_back() -> None:
        await asyncio.sleep(DOWN)
        await stack.start("postgres")

    async def redis_back() -> None:
        await asyncio.sleep(DOWN)
        await stack.start("redis")

    return [
        ("leader", kill_leader, restart_leader),
        ("postgres", stack.postgres.stop, pg_back),
        ("redis", stack.redis.stop, redis_back),
        ("instance", fleet.kill_one_of_each, None),
    ]


async def soak(args: argparse.Namespace, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    stack = LocalStack(
        StackConfig(
            home=args.home,
            brokers=3,
            kafka_heap_max="512m",
            kafka_port=24092,
            kafka_controller_port=24093,
            postgres_port=24432,
            redis_port=24379,
        )
    )
    await stack.up()
    begun = time.monotonic()
    async with isolated_deployment(stack.settings(), "soak") as settings:
        fleet = Fleet(settings, args.home / "fleet-logs")
        await fleet.start()
        try:
            async with Client(settings) as rw:
                schedule = itertools.cycle(faults(stack, settings, fleet))
                for n in itertools.count():
                    if time.monotonic() - begun > args.minutes * 60:
                        break
                    name, fault, heal = next(schedule)
                    runs = max(4, int(args.every * args.rate))
                    report = await under_load(
                        settings,
                        fleet,
                        rw,
                        f"r{n}-{name}",
                        fault,
                        heal,
                        runs=runs,
                        sessions=max(2, runs // 4),
                        fault_at=runs // 2,
                        seconds=args.every,
                    )
                    print(report.line(), flush=True)
                    rounds.append(report.as_dict())
                    report.assert_ridden_out()
                    if name == "instance":
                        await fleet.restart_killed()
                    if name == "leader":
                        await wait_in_sync(settings, within=120)
        finally:
            await fleet.stop()
    return {
        "minutes": round((time.monotonic() - begun) / 60, 1),
        "rounds": rounds,
        "runs": sum(sum(r["runs"].values()) for r in rounds),
        "worst_first_write_s": max((r["first_write_s"] for r in rounds), default=None),
        "worst_caught_up_s": max((r["caught_up_s"] for r in rounds), default=None),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--every", type=float, default=120, help="seconds between faults")
    parser.add_argument("--rate", type=float, default=2, help="runs started per second")
    parser.add_argument("--home", type=Path, default=REPO / ".runwire" / "soak-cluster")
    args = parser.parse_args()
    rounds: list[dict[str, Any]] = []
    code = 0
    try:
        result = asyncio.run(soak(args, rounds))
    except AssertionError as e:
        print(f"soak_cluster: an invariant broke: {e}", file=sys.stderr)
        result = {"broken": str(e), "rounds": rounds}
        code = 1
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak_cluster.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rounds"}, indent=2))
    return code


if __name__ == "__main__":
    sys.exit(main())
