"""Postgres projections under load: publish -> visible at a high rate, by stage, and a burst.

- ``rate``: the run-status, session-index and usage projectors, each in its
  own process (this file with ``--serve``: the projector ``runwire serve``
  runs, plus a log hook and a batch callback that note when each record was
  fetched and when its batch committed); this process publishes with
  ``Publisher`` at ``--rate`` events/s (a group every 10 ms) for
  ``--seconds``; a fourth process (``--poll``) polls the stored positions
  every 5 ms until every event is visible, however far behind the
  projectors fell. Each event's latency is split into
  stages: publish -> broker ack, ack -> fetched by the projector, fetched
  -> applied (its batch committed), applied -> a reader saw it (the poll).
  "Applied" is noted when the projection's apply returns to the projector,
  a loop turn after its commit: under load a reader may see the commit
  first, and applied -> seen is then negative.
  The first second warms up. Goal: p99 < 50 ms; at 10,000 events/s, what holds.
- ``burst``: with the projectors caught up, ``--burst`` events are written
  at once (the bulk writer: as fast as the broker takes them); each
  projector's drain rate (events over the time from the first write to its
  stored positions reaching the log end) and its resident memory while it
  drains (sampled every 0.1 s: before, peak, after).
- Each projector process reports its CPU time per event.

Run against a running stack (``runwire stack up``, or
``RUNWIRE_HOME=.runwire/test`` for the test stack):
    .venv/bin/python bench/bench_projection_load.py [--rate E] [--seconds S] [--burst N]
Writes bench/results/projection_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from bisect import bisect_right
from pathlib import Path
from typing import Any

import psycopg
from tests.support.workload import bulk_publish, synthetic_events

from bench_projections import POLL_SECONDS, Sent, _stats, first_seen, paced_publish, rss_mb
from runwire.contract.events import Event
from runwire.infra.isolation import isolated_deployment
from runwire.log import hooks
from runwire.log.records import SourceRecord
from runwire.projections.catalog import opener
from runwire.projections.runtime.consumer import Projector
from runwire.projections.runtime.protocol import ApplyResult, Batch, DeadLetterSink
from runwire.projections.runtime.tuning import tune_for_batches
from runwire.settings import Settings
from served import served_env

RESULTS = Path(__file__).parent / "results"
PROJECTIONS = ("runs", "sessions", "usage")


# -- a projector process that notes when records are fetched and applied --------------


class _Fetched:
    """A log hook: (topic, partition) -> offsets read, and when."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, int], tuple[list[int], list[float]]] = {}

    def writing(self, event: Event, topic: str, headers: Any) -> None:
        pass

    def read(self, record: SourceRecord) -> None:
        offsets, times = self.seen.setdefault((record.topic, record.partition), ([], []))
        if not offsets or record.offset > offsets[-1]:  # the first read of each offset
            offsets.append(record.offset)
            times.append(time.perf_counter())


async def serve(name: str, out: Path) -> None:
    """(``--serve``) Run projector ``name`` until SIGTERM; write what it noted to ``out``."""
    settings = Settings()
    fetched = _Fetched()
    hooks.install(fetched)
    applied: list[tuple[float, list[tuple[str, int, int]]]] = []

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with opener(name)(settings) as projection:
        apply = projection.apply

        async def timed(batch: Batch, sink: DeadLetterSink) -> ApplyResult:
            # Noted when the batch's transaction has committed: the pipelined
            # loop books a batch only once the next fetch is back.
            result = await apply(batch, sink)
            at = time.perf_counter()
            applied.append(
                (at, [(tp.topic, tp.partition, p) for tp, p in result.positions.items()])
            )
            return result

        projection.apply = timed  # type: ignore[method-assign,assignment]
        async with Projector(projection, settings) as projector:
            await _serving(projector, stop, fetched, applied, out)


async def _serving(
    projector: Projector,
    stop: asyncio.Event,
    fetched: _Fetched,
    applied: list[tuple[float, list[tuple[str, int, int]]]],
    out: Path,
) -> None:
    """Apply until SIGTERM (once caught up, say so on stdout); then write what was noted."""
    tune_for_batches()
    runner = asyncio.create_task(projector.run())
    while not stop.is_set():
        lag = await projector.lag()
        if lag and not any(lag.values()):
            break
        await asyncio.sleep(0.05)
    print("caught up", flush=True)
    cpu, records = time.process_time(), projector.stats.records
    await stop.wait()
    cpu, records = time.process_time() - cpu, projector.stats.records - records
    await projector.stop()
    await runner
    noted = {
        "fetched": {f"{t}\x1f{p}": v for (t, p), v in fetched.seen.items()},
        "applied": applied,
        "cpu_us_per_event": round(cpu / records * 1e6, 1) if records else None,
    }
    out.write_text(json.dumps(noted))  # noqa: ASYNC240 - once, at the end


async def poll(dsn: str, out: Path) -> None:
    """(``--poll``) Note every change of a live stored position and when it was seen, until
    SIGTERM (a process of its own, so that publishing cannot delay the observation)."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    changes: list[tuple[float, str, str, int, int]] = []
    last: dict[tuple[str, str, int], int] = {}
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        print("polling", flush=True)
        while not stop.is_set():
            cur = await conn.execute(POSITIONS)
            now = time.perf_counter()
            for projection, topic, partition, next_offset in await cur.fetchall():
                if last.get((projection, topic, partition)) != next_offset:
                    last[(projection, topic, partition)] = next_offset
                    changes.append((now, projection, topic, partition, next_offset))
            await asyncio.sleep(POLL_SECONDS)
    out.write_text(json.dumps(changes))  # noqa: ASYNC240 - once, at the end


POSITIONS = (
    "SELECT p.projection, p.topic, p.partition, p.next_offset "
    "FROM runwire_projection_positions p JOIN runwire_projection_generations g "
    "ON g.projection = p.projection AND g.live = p.generation"
)


async def wait_drained(
    dsn: str, ends: dict[tuple[str, int], int], within: float
) -> dict[str, float]:
    """Poll until every projection's stored positions reach ``ends`` (on the topics it
    reads); the perf_counter time each got there."""
    drained: dict[str, float] = {}
    deadline = time.perf_counter() + within
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        while len(drained) < len(PROJECTIONS) and time.perf_counter() < deadline:
            cur = await conn.execute(POSITIONS)
            stored: dict[str, dict[tuple[str, int], int]] = {}
            for projection, topic, partition, offset in await cur.fetchall():
                stored.setdefault(projection, {})[(topic, partition)] = offset
            now = time.perf_counter()
            for name in PROJECTIONS:
                mine = stored.get(name, {})
                topics = {t for t, _ in mine}
                if name not in drained and all(
                    mine.get(tp, 0) >= end for tp, end in ends.items() if tp[0] in topics
                ):
                    drained[name] = now
            await asyncio.sleep(POLL_SECONDS)
    return drained


async def start_serving(name: str, settings: Settings, work: Path) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve",
        name,
        str(work / f"{name}.json"),
        env=served_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,  # what it dead-letters is logged; not the figure
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=120)
    if b"caught up" not in line:
        raise RuntimeError(f"projector {name} did not come up: {line!r}")
    return proc


async def stop_serving(procs: dict[str, asyncio.subprocess.Process], work: Path) -> dict[str, Any]:
    for proc in procs.values():
        proc.send_signal(signal.SIGTERM)
    for proc in procs.values():
        await proc.wait()
    return {name: json.loads((work / f"{name}.json").read_text()) for name in procs}


def _applied_index(
    applied: list[tuple[float, list[tuple[str, int, int]]]],
) -> dict[tuple[str, int], tuple[list[int], list[float]]]:
    """Per partition: stored positions in order, and when each was first stored."""
    out: dict[tuple[str, int], tuple[list[int], list[float]]] = {}
    for at, positions in applied:
        for topic, partition, position in positions:
            offsets, times = out.setdefault((topic, partition), ([], []))
            if not offsets or position > offsets[-1]:
                offsets.append(position)
                times.append(at)
    return out


# -- publish -> visible at a rate --------------------------------------------------------


async def measure_rate(base: Settings, rate: int, seconds: float) -> dict[str, Any]:
    async with isolated_deployment(base, "bench") as settings:
        warm = synthetic_events(runs=40, sessions=10, events=1000, seed=9)
        await bulk_publish(settings, warm.events)  # so every projector has tables and positions
        work = Path(tempfile.mkdtemp(prefix="bench-load-"))
        procs = {name: await start_serving(name, settings, work) for name in PROJECTIONS}
        total = int(rate * seconds)
        workload = synthetic_events(
            runs=max(1, total // 25), sessions=max(1, total // 170), events=total, seed=10
        )
        events = workload.events[:total]
        changes = work / "changes.json"
        poller = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--poll",
            settings.postgres_dsn,
            str(changes),
            stdout=asyncio.subprocess.PIPE,
        )
        assert poller.stdout is not None
        await asyncio.wait_for(poller.stdout.readline(), timeout=60)
        sent: Sent = []
        try:
            achieved = await paced_publish(settings, events, rate, sent)
            ends: dict[tuple[str, int], int] = {}
            for _, pos, _, _ in sent:
                where = (pos.topic, pos.partition)
                ends[where] = max(ends.get(where, 0), pos.offset + 1)
            # However far behind the projectors fell, every event is waited for.
            await wait_drained(settings.postgres_dsn, ends, within=300)
        finally:
            poller.send_signal(signal.SIGTERM)
            await poller.wait()
            noted = await stop_serving(procs, work)
        seen = first_seen(json.loads(changes.read_text()))
        cutoff = min(at for _, _, at, _ in sent) + 1.0
        measured = [item for item in sent if item[2] >= cutoff]
        out: dict[str, Any] = {
            "target_events_per_s": rate,
            "achieved_events_per_s": round(achieved),
            "seconds": seconds,
            "events": len(events),
            "publish_ack": _stats([(acked - at) * 1000 for _, _, at, acked in measured]),
        }
        for name in PROJECTIONS:
            fetched = {
                (k.split("\x1f")[0], int(k.split("\x1f")[1])): v
                for k, v in noted[name]["fetched"].items()
            }
            applied = _applied_index(noted[name]["applied"])
            stages: dict[str, list[float]] = {
                "ack_fetched": [],
                "fetched_applied": [],
                "applied_seen": [],
                "total": [],
            }
            unseen = 0
            for event, pos, at, acked in measured:
                if name != "sessions" and event.run_id is None:
                    continue
                where = (pos.topic, pos.partition)
                f_offsets, f_times = fetched.get(where, ([], []))
                i = bisect_right(f_offsets, pos.offset) - 1
                a_offsets, a_times = applied.get(where, ([], []))
                j = bisect_right(a_offsets, pos.offset)
                s_offsets, s_times = seen.get((name, pos.topic, pos.partition), ([], []))
                k = bisect_right(s_offsets, pos.offset)
                if (
                    i < 0
                    or f_offsets[i] != pos.offset
                    or j == len(a_offsets)
                    or k == len(s_offsets)
                ):
                    unseen += 1
                    continue
                got, done, saw = f_times[i], a_times[j], s_times[k]
                stages["ack_fetched"].append((got - acked) * 1000)
                stages["fetched_applied"].append((done - got) * 1000)
                stages["applied_seen"].append((saw - done) * 1000)
                stages["total"].append((saw - at) * 1000)
            out[name] = {
                **_stats(stages["total"]),
                "unseen": unseen,
                "stages_p50_p99_ms": {
                    stage: [
                        _stats(values).get("p50_ms"),
                        _stats(values).get("p99_ms"),
                    ]
                    for stage, values in stages.items()
                    if stage != "total"
                },
                "projector_cpu_us_per_event": noted[name]["cpu_us_per_event"],
                "goal_p99_ms": 50,
            }
        return out


# -- a burst -------------------------------------------------------------------------------


async def measure_burst(base: Settings, burst: int) -> dict[str, Any]:
    async with isolated_deployment(base, "bench") as settings:
        warm = synthetic_events(runs=40, sessions=10, events=1000, seed=9)
        await bulk_publish(settings, warm.events)
        work = Path(tempfile.mkdtemp(prefix="bench-burst-"))
        procs = {name: await start_serving(name, settings, work) for name in PROJECTIONS}
        workload = synthetic_events(
            runs=max(1, burst // 25), sessions=max(1, burst // 170), events=burst, seed=11
        )
        rss: dict[str, list[float]] = {name: [] for name in PROJECTIONS}
        before = {name: rss_mb(proc.pid) or 0.0 for name, proc in procs.items()}
        drained: dict[str, float] = {}
        sampling = True

        async def sample() -> None:
            while sampling:
                for name, proc in procs.items():
                    value = rss_mb(proc.pid)
                    if value is not None and name not in drained:
                        rss[name].append(value)
                await asyncio.sleep(0.1)

        sampler = asyncio.create_task(sample())
        try:
            started = time.perf_counter()
            placed = await bulk_publish(settings, workload.events)
            written = time.perf_counter() - started
            ends: dict[tuple[str, int], int] = {}
            for p in placed:
                where = (p.topic, p.partition)
                ends[where] = max(ends.get(where, 0), p.offset + 1)
            at = await wait_drained(settings.postgres_dsn, ends, within=300)
            drained.update({name: t - started for name, t in at.items()})
        finally:
            sampling = False
            await sampler
            noted = await stop_serving(procs, work)
        out: dict[str, Any] = {"events": len(workload.events), "write_seconds": round(written, 2)}
        for name in PROJECTIONS:
            seconds = drained.get(name)
            out[name] = {
                "drain_seconds": round(seconds, 2) if seconds else None,
                "drain_events_per_s": round(len(workload.events) / seconds) if seconds else None,
                "rss_mb_before": round(before[name], 1),
                "rss_mb_peak_while_draining": round(max(rss[name], default=0.0), 1),
                "rss_mb_samples": len(rss[name]),
                "projector_cpu_us_per_event": noted[name]["cpu_us_per_event"],
            }
        return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--burst", type=int, default=50_000)
    parser.add_argument("--skip", action="append", default=[], help="rate | burst")
    parser.add_argument("--serve", nargs=2, metavar=("NAME", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--poll", nargs=2, metavar=("DSN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        await serve(args.serve[0], Path(args.serve[1]))
        return
    if args.poll:
        await poll(args.poll[0], Path(args.poll[1]))
        return
    base = Settings()
    result: dict[str, Any] = {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()}
    if "rate" not in args.skip:
        result["rate"] = lat = await measure_rate(base, args.rate, args.seconds)
        print(
            f"publish at {lat['achieved_events_per_s']}/s (target {args.rate}): publish -> ack "
            f"p50 {lat['publish_ack'].get('p50_ms')} ms, p99 {lat['publish_ack'].get('p99_ms')} ms"
        )
        for name in PROJECTIONS:
            r = lat[name]
            stages = ", ".join(
                f"{stage} {p50}/{p99}" for stage, (p50, p99) in r["stages_p50_p99_ms"].items()
            )
            print(
                f"  {name}: publish -> visible p50 {r.get('p50_ms')} ms, p99 {r.get('p99_ms')} ms "
                f"(goal p99 < 50 ms; unseen {r['unseen']}); stages p50/p99 ms: {stages}; "
                f"projector CPU {r['projector_cpu_us_per_event']} us/event"
            )
    if "burst" not in args.skip:
        result["burst"] = b = await measure_burst(base, args.burst)
        print(f"burst of {b['events']} events written in {b['write_seconds']} s")
        for name in PROJECTIONS:
            r = b[name]
            print(
                f"  {name}: drained in {r['drain_seconds']} s ({r['drain_events_per_s']}/s), RSS "
                f"{r['rss_mb_before']} MB before, peak {r['rss_mb_peak_while_draining']} MB while "
                f"draining; CPU {r['projector_cpu_us_per_event']} us/event"
            )
    result["load_average_at_end"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "projection_load.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**previous, **result}, indent=2) + "\n")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
