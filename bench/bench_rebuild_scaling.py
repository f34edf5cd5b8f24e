"""Rebuild rate with one process vs two, each filling the same copy on its own partitions.

- A log of ``--events`` run and session events (the synthetic workload) is
  written once. Each round starts a fresh copy of the projection
  (``begin_rebuild(restart=True)``) and fills it from offset 0 with
  ``--processes`` worker processes (this file with ``--worker``), each a
  projector with ``assignment="all"`` narrowed to its share of the
  partitions (every other one), tuned as ``runwire projections rebuild``
  tunes a process. Workers connect first, then start together; the round's
  time is the slowest worker's, from the start to its partitions' log ends.
- Rounds alternate one process and two (``--rounds`` of each); the figure is
  the median rate of each and their ratio. Goal: two >= 1.6x one. On a
  machine with 2 cores, Postgres and Kafka share those cores with the
  workers, so the ceiling is below 2x: the CPU per event of the workers and
  the load average are printed beside it.
- The copy is not switched live (the switch is one process's step); the
  last one is discarded.

Run against a running stack (``runwire stack up``, or
``RUNWIRE_HOME=.runwire/test`` for the test stack):
    .venv/bin/python bench/bench_rebuild_scaling.py [--events N] [--rounds R] [--projection runs]
Writes bench/results/rebuild_scaling.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.workload import bulk_publish, synthetic_events

from runwire.infra.isolation import isolated_deployment
from runwire.log.records import TopicPartition
from runwire.projections.runtime.consumer import Projector
from runwire.projections.runtime.dead_letters import DeadLetterProducer
from runwire.projections.runtime.pg import Pool, open_pool
from runwire.projections.runtime.pg_projection import PostgresProjection
from runwire.projections.runtime.rebuild import REBUILD_OPTIONS
from runwire.projections.runtime.tuning import tune_for_rebuild
from runwire.settings import Settings
from served import served_env

RESULTS = Path(__file__).parent / "results"


def projection_of(name: str, pool: Pool, settings: Settings) -> PostgresProjection:
    from runwire.projections.memory.projection import MemoryProjection
    from runwire.projections.runs.projection import RunsProjection
    from runwire.projections.sessions.projection import SessionsProjection
    from runwire.projections.usage.projection import UsageProjection

    kinds: dict[str, Callable[[Pool, Settings], PostgresProjection]] = {
        "runs": RunsProjection,
        "sessions": SessionsProjection,
        "usage": UsageProjection,
        "memory": MemoryProjection,
    }
    return kinds[name](pool, settings)


# -- a worker: one process filling the copy on its partitions ---------------------------


async def worker(name: str, generation: int, partitions: list[TopicPartition]) -> None:
    """(``--worker``) Fill ``generation`` on ``partitions``; print a JSON line."""
    settings = Settings()
    tune_for_rebuild()
    pool = await open_pool(settings, max_size=2)
    try:
        copy = projection_of(name, pool, settings).pinned(generation)
        sink = DeadLetterProducer(settings, f"{name}-bench-g{generation}")
        async with (
            sink,
            Projector(
                copy,
                settings,
                assignment="all",
                partitions=partitions,
                options=REBUILD_OPTIONS,
                dead_letters=sink,
            ) as projector,
        ):
            ends = await projector.end_offsets()
            print("ready", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            started, cpu = time.perf_counter(), time.process_time()
            while any(projector.positions().get(tp, 0) < end for tp, end in ends.items()):
                await projector.step()
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            records = projector.stats.records
    finally:
        await pool.close()
    print(json.dumps({"records": records, "seconds": seconds, "cpu_seconds": cpu}), flush=True)


# -- the rounds -----------------------------------------------------------------------


async def one_round(
    settings: Settings, projection: PostgresProjection, shares: list[list[TopicPartition]]
) -> dict[str, Any]:
    copy = await projection.begin_rebuild(restart=True)
    procs = []
    for share in shares:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--worker",
            projection.name,
            str(copy.generation),
            json.dumps([list(tp) for tp in share]),
            env=served_env(settings),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        procs.append(proc)
    for proc in procs:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=120)
        if line.strip() != b"ready":
            raise RuntimeError(f"a worker did not come up: {line!r}")
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    reports = []
    for proc in procs:
        assert proc.stdout is not None
        reports.append(json.loads(await proc.stdout.readline()))
        await proc.wait()
    records = sum(r["records"] for r in reports)
    seconds = max(r["seconds"] for r in reports)
    cpu = sum(r["cpu_seconds"] for r in reports)
    return {
        "records": records,
        "seconds": seconds,
        "events_per_s": records / seconds,
        "worker_cpu_us_per_event": cpu / records * 1e6,
    }


async def measure(base: Settings, name: str, events: int, rounds: int) -> dict[str, Any]:
    async with isolated_deployment(base, "bench") as settings:
        workload = synthetic_events(
            runs=events // 25, sessions=max(1, events // 170), events=events
        )
        await bulk_publish(settings, workload.events)
        pool = await open_pool(settings)
        try:
            projection = projection_of(name, pool, settings)
            await projection.prepare()
            async with Projector(projection, settings, assignment="all") as probe:
                every = await probe.partitions()
            results: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
            for _ in range(rounds):
                for processes in (1, 2):
                    shares = [every[i::processes] for i in range(processes)]
                    results[processes].append(await one_round(settings, projection, shares))
            copy = await projection.begin_rebuild()
            await copy.discard()
        finally:
            await pool.close()
    out: dict[str, Any] = {"projection": name, "events": len(workload.events), "rounds": rounds}
    for processes, runs in results.items():
        out[f"processes_{processes}"] = {
            "events_per_s": round(statistics.median(r["events_per_s"] for r in runs)),
            "worker_cpu_us_per_event": round(
                statistics.median(r["worker_cpu_us_per_event"] for r in runs), 1
            ),
            "rounds_events_per_s": [round(r["events_per_s"]) for r in runs],
        }
    out["ratio_two_vs_one"] = round(
        out["processes_2"]["events_per_s"] / out["processes_1"]["events_per_s"], 3
    )
    out["goal_ratio"] = 1.6
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--projection", default="runs", help="runs | sessions | usage | memory")
    parser.add_argument(
        "--worker", nargs=3, metavar=("NAME", "GEN", "PARTS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        name, generation, parts = args.worker
        await worker(name, int(generation), [TopicPartition(t, p) for t, p in json.loads(parts)])
        return
    result: dict[str, Any] = {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()}
    result.update(await measure(Settings(), args.projection, args.events, args.rounds))
    result["load_average_at_end"] = os.getloadavg()
    one, two = result["processes_1"], result["processes_2"]
    print(
        f"rebuild {args.projection}: one process {one['events_per_s']}/s "
        f"({one['worker_cpu_us_per_event']} us CPU/event), two processes "
        f"{two['events_per_s']}/s ({two['worker_cpu_us_per_event']} us CPU/event) -> "
        f"{result['ratio_two_vs_one']}x (goal >= 1.6x; {result['cpus']} cores, load "
        f"{result['load_average_at_start'][0]:.1f})"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "rebuild_scaling.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
