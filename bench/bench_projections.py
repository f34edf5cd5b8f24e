"""Postgres projections (run status, session index, usage, memory): rebuild rate, latency, memory.

- ``rebuild``: ``rebuild()`` of each projection (run status, session index,
  usage, memory) in-process (a fresh copy from offset 0, then the switch),
  with the process tuned as ``runwire projections rebuild`` tunes it, over a
  log of ``--events`` run and session events and ``--events / 2`` memory
  writes (one in twenty a tombstone), against ``raw``: a group-less aiokafka
  consumer doing ``getmany`` + ``decode`` (with the projection's own decoder)
  of the same topics, in the same run, the median of ``--repeat`` rounds.
  Both as a rate (wall clock) and as process CPU per event, which a loaded
  machine disturbs less. Goal: >= 0.5x raw.
- ``latency``: ``runwire serve projector-runs`` and ``projector-sessions`` in
  their own processes; this process publishes with ``Publisher`` at a
  sustained ``--rate`` events/s (a group every 10 ms) for ``--seconds``; a
  third process polls the stored positions every 5 ms (apart, so that the
  publishing cannot delay the observation). An event is visible once its
  partition's stored position is past its offset (its rows commit in the same
  transaction). Latency runs from the publish call (producer linger and
  broker ack included) to the first poll that sees it; the first second is
  warm-up. Goal: p99 < 50 ms. The projectors run timed (``served.py``:
  the served command with :mod:`runwire.projections.runtime.timings`), so
  each event's latency is cut into stages (``served.STAGES``: publish ->
  ack -> the fetch request sent -> its response arrived -> handed over by
  ``getmany`` -> decoded -> apply began -> applied -> seen), printed as
  p50 / p99 and as the mean of the slowest 1 % (where the p99 goes), with
  the batches' sizes and applies and the collector's pauses, and how long
  each projector ran and waited for a core (``/proc`` schedstat) while the
  bench published: waiting longer than running means a starved machine.
  Clocks are ``time.perf_counter()`` in every process (one monotonic clock).
- ``memory``: ``runwire projections rebuild runs`` in its own process over a
  log of ``--large`` events; its resident memory is sampled every 0.25 s.
  Goal: flat (the last quarter's peak within a few MB of the first
  quarter's), not growing with the log.

Run against a running stack (``runwire stack up``, or
``RUNWIRE_HOME=.runwire/test`` for the test stack):
    .venv/bin/python bench/bench_projections.py [--events N] [--large N] [--rate E] [--seconds S]
Writes bench/results/projections.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from bisect import bisect_right
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from tests.support.workload import bulk_publish, synthetic_events

from runwire.contract.codec import default_codec
from runwire.contract.events import Event, MemoryDeleted, MemorySet
from runwire.infra.isolation import isolated_deployment
from runwire.log import Publisher
from runwire.projections.memory.projection import MemoryProjection
from runwire.projections.runs.projection import RunsProjection
from runwire.projections.runtime.consumer import Decoder, decoder_for
from runwire.projections.runtime.pg import open_pool
from runwire.projections.runtime.pg_projection import PostgresProjection
from runwire.projections.runtime.rebuild import rebuild
from runwire.projections.runtime.tuning import tune_for_rebuild
from runwire.projections.sessions.projection import SessionsProjection
from runwire.projections.usage.projection import UsageProjection
from runwire.settings import Settings
from served import (
    Timed,
    cpu_seconds,
    print_breakdown,
    run_queue_seconds,
    serve_command,
    served_env,
    stage_breakdown,
)

RESULTS = Path(__file__).parent / "results"
# How often the latency run reads the stored positions: often enough to resolve
# milliseconds, not so often that the polling itself loads the machine.
POLL_SECONDS = 0.005


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- rebuild rate ------------------------------------------------------------------


def memory_events(count: int, seed: int = 0) -> list[Event]:
    """``count`` memory writes: sets over about ``count // 5`` addresses (user and
    session scopes), one in twenty a deletion (a tombstone on the log)."""
    rng = random.Random(seed)
    addresses = [
        (rng.choice(["user", "session"]), f"o-{seed}-{rng.randint(0, 199)}", f"k{n}")
        for n in range(max(1, count // 5))
    ]
    out: list[Event] = []
    for n in range(count):
        scope, owner, key = rng.choice(addresses)
        payload: MemorySet | MemoryDeleted
        if n % 20 == 19:
            payload = MemoryDeleted(scope=scope, owner=owner, key=key)
        else:
            value = {"n": n, "note": f"prefers option {rng.randint(0, 9)}", "score": 0.5}
            payload = MemorySet(scope=scope, owner=owner, key=key, value=value)
        out.append(
            Event.create(
                payload,
                user_id=owner if scope == "user" else "u-1",
                tenant="acme",
                session_id=owner if scope == "session" else None,
                producer="bench",
            )
        )
    return out


async def raw_read(
    settings: Settings, topics: tuple[str, ...], decoder: Decoder | None = None
) -> tuple[int, float, float]:
    """getmany + decode of every record of ``topics``; (records, seconds, CPU seconds).

    ``decoder``: the one the projection's rebuild uses (the memory projection's
    reads tombstones); the default codec otherwise.
    """
    decode = (decoder or default_codec()).decode
    started, cpu = time.perf_counter(), time.process_time()
    kafka = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_bytes=16 * 1_048_576,
    )
    await kafka.start()
    count = 0
    try:
        await kafka._client.force_metadata_update()
        tps = [TopicPartition(t, p) for t in topics for p in sorted(kafka.partitions_for_topic(t))]
        kafka.assign(tps)
        await kafka.seek_to_beginning(*tps)
        ends = await kafka.end_offsets(tps)
        left = {tp for tp in tps if ends[tp] > 0}
        while left:
            fetched = await kafka.getmany(timeout_ms=500, max_records=5000)
            for tp, records in fetched.items():
                for record in records:
                    decode(record.value or b"")
                count += len(records)
                if records and records[-1].offset + 1 >= ends[tp]:
                    left.discard(tp)
    finally:
        await kafka.stop()
    return count, time.perf_counter() - started, time.process_time() - cpu


def median(values: list[float]) -> float:
    return statistics.median(values)


async def measure_rebuild(base: Settings, events: int, repeat: int) -> dict[str, Any]:
    async with isolated_deployment(base, "bench") as settings:
        workload = synthetic_events(
            runs=events // 25, sessions=max(1, events // 170), events=events
        )
        await bulk_publish(settings, workload.events)
        # Memory writes go through the publisher: deletions are tombstones.
        async with Publisher(settings) as publisher:
            memory = memory_events(events // 2)
            for start in range(0, len(memory), 1000):
                await publisher.publish_many(memory[start : start + 1000])
        out: dict[str, Any] = {"events": len(workload.events), "repeat": repeat}
        # The published events are not the rebuild's: held, they were an old
        # generation of half a million objects that a `runwire projections
        # rebuild` process (its start-up frozen) does not have, which changed
        # how often full collections ran and what each walked (once half a
        # second, charged to whichever projection's round it fell in).
        del workload, memory
        gc.collect()
        pool = await open_pool(settings)
        try:
            projections: list[PostgresProjection] = [
                RunsProjection(pool, settings),
                SessionsProjection(pool, settings),
                UsageProjection(pool, settings),
                MemoryProjection(pool, settings),
            ]
            for projection in projections:
                await projection.prepare()
                decoder = decoder_for(projection, settings)
                raw_rates, raw_cpu, rebuild_rates, rebuild_cpu = [], [], [], []
                for _ in range(repeat):
                    count, seconds, cpu = await raw_read(settings, projection.topics, decoder)
                    raw_rates.append(count / seconds)
                    raw_cpu.append(cpu / count * 1e6)
                    cpu = time.process_time()
                    report = await rebuild(projection, settings)
                    rebuild_cpu.append((time.process_time() - cpu) / report.records * 1e6)
                    rebuild_rates.append(report.records / report.seconds)
                raw, built = median(raw_rates), median(rebuild_rates)
                out[projection.name] = {
                    "records": count,
                    "raw_getmany_decode_events_per_s": round(raw),
                    "rebuild_events_per_s": round(built),
                    "ratio": round(built / raw, 3),
                    "raw_cpu_us_per_event": round(median(raw_cpu), 1),
                    "rebuild_cpu_us_per_event": round(median(rebuild_cpu), 1),
                    "cpu_ratio": round(median(raw_cpu) / median(rebuild_cpu), 3),
                    "goal_ratio": 0.5,
                }
        finally:
            await pool.close()
        return out


# -- publish -> visible latency --------------------------------------------------------


async def serve(name: str, settings: Settings, timed: Path) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        *serve_command(name, timed),
        env=served_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=90)
    if b"caught up" not in line:
        raise RuntimeError(f"projector-{name} did not come up: {line!r}")
    return proc


async def poll_positions(dsn: str, out: Path, until: float) -> None:
    """(``--poll``) Record every change of a live position, with the wall time it was seen.

    Runs in its own process, until the wall time ``until``, so that
    publishing cannot delay the observation. Says ``polling`` on stdout after
    its first poll: publishing starts then, not while it starts up.
    """
    changes: list[tuple[float, str, str, int, int]] = []
    last: dict[tuple[str, str, int], int] = {}
    ready = False
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        while time.perf_counter() < until:
            cur = await conn.execute(
                "SELECT p.projection, p.topic, p.partition, p.next_offset "
                "FROM runwire_projection_positions p JOIN runwire_projection_generations g "
                "ON g.projection = p.projection AND g.live = p.generation"
            )
            now = time.perf_counter()
            for projection, topic, partition, next_offset in await cur.fetchall():
                if last.get((projection, topic, partition)) != next_offset:
                    last[(projection, topic, partition)] = next_offset
                    changes.append((now, projection, topic, partition, next_offset))
            if not ready:
                print("polling", flush=True)
                ready = True
            await asyncio.sleep(POLL_SECONDS)
    with open(out, "w") as f:  # noqa: ASYNC230 - once, at the end
        json.dump(changes, f)


def first_seen(
    changes: list[tuple[float, str, str, int, int]],
) -> dict[tuple[str, str, int], tuple[list[int], list[float]]]:
    """Per (projection, topic, partition): positions in order, and when each was first seen."""
    seen: dict[tuple[str, str, int], tuple[list[int], list[float]]] = {}
    for at, projection, topic, partition, position in sorted(changes):
        offsets, times = seen.setdefault((projection, topic, partition), ([], []))
        if not offsets or position > offsets[-1]:
            offsets.append(position)
            times.append(at)
    return seen


Sent = list[tuple[Event, Any, float, float]]
"""Per event published: the event, its position, when it was sent and acknowledged."""


async def paced_publish(settings: Settings, events: list[Event], rate: int, sent: Sent) -> float:
    """Publish ``events`` at ``rate`` events/s, a group every 10 ms, booking each
    event in ``sent`` as its group is acknowledged; returns the rate achieved.

    - Each group is its own ``publish_many``, started on time without waiting
      for the one before (a sustained rate, as many writers make): groups keep
      their order unless the producer gives one up and it is published again.
    """
    async with Publisher(settings) as publisher:
        group = max(1, rate // 100)
        started = time.perf_counter()
        tasks = []

        def book(chunk: list[Event], at: float) -> Callable[[Any], None]:
            def booked(task: Any) -> None:
                acked = time.perf_counter()
                sent.extend((e, p, at, acked) for e, p in zip(chunk, task.result(), strict=True))

            return booked

        for n, start in enumerate(range(0, len(events), group)):
            await asyncio.sleep(max(0.0, started + n * 0.01 - time.perf_counter()))
            chunk = events[start : start + group]
            task = asyncio.create_task(publisher.publish_many(chunk))
            task.add_done_callback(book(chunk, time.perf_counter()))
            tasks.append(task)
        await asyncio.gather(*tasks)
        return len(events) / (time.perf_counter() - started)


async def measure_latency(base: Settings, rate: int, seconds: float) -> dict[str, Any]:
    async with isolated_deployment(base, "bench") as settings:
        warm = synthetic_events(runs=40, sessions=10, events=1000, seed=9)
        await bulk_publish(settings, warm.events)  # so both projectors have tables and positions
        work = Path(tempfile.mkdtemp(prefix="bench-projections-"))
        procs = [
            await serve(name, settings, work / f"{name}.jsonl") for name in ("runs", "sessions")
        ]
        total = int(rate * seconds)
        workload = synthetic_events(
            runs=max(1, total // 25), sessions=max(1, total // 170), events=total, seed=10
        )
        events = workload.events[:total]
        out = work / "changes.json"
        until = time.perf_counter() + seconds * 1.5 + 10.0  # publishing, lagging behind, and a tail
        poller = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--poll",
            settings.postgres_dsn,
            str(out),
            str(until),
            stdout=asyncio.subprocess.PIPE,
        )
        # Publish once the observer observes: its start-up (imports, connecting)
        # takes about a second, longer on a loaded machine, and the events
        # published meanwhile would seem that much later.
        assert poller.stdout is not None
        if await asyncio.wait_for(poller.stdout.readline(), timeout=60) != b"polling\n":
            raise RuntimeError("the position poller did not start")
        sent: Sent = []
        load_before = os.getloadavg()
        cpu = [cpu_seconds(proc.pid) for proc in procs]
        waited = [run_queue_seconds(proc.pid) for proc in procs]
        # What the bench's own processes take of the machine while it publishes.
        own = (time.perf_counter(), time.process_time(), cpu_seconds(poller.pid))
        try:
            achieved = await paced_publish(settings, events, rate, sent)
            wall = time.perf_counter() - own[0]
            bench_cpu = {
                "publisher_cpu_percent": round((time.process_time() - own[1]) / wall * 100, 1),
                "observer_cpu_percent": round((cpu_seconds(poller.pid) - own[2]) / wall * 100, 1),
            }
        finally:
            # The shares are of the publishing; the CPU per event below also
            # counts the drain after it.
            published = time.perf_counter() - own[0]
            ran = [cpu_seconds(proc.pid) - used for proc, used in zip(procs, cpu, strict=True)]
            waited = [
                run_queue_seconds(proc.pid) - before
                for proc, before in zip(procs, waited, strict=True)
            ]
            await poller.wait()
            cpu = [cpu_seconds(proc.pid) - used for proc, used in zip(procs, cpu, strict=True)]
            for proc in procs:
                proc.terminate()
                await proc.wait()
        seen = first_seen(json.loads(out.read_text()))
        cutoff = min(at for _, _, at, _ in sent) + 1.0  # the first second warms up
        measured = [item for item in sent if item[2] >= cutoff]
        out_: dict[str, Any] = {
            "target_events_per_s": rate,
            "achieved_events_per_s": round(achieved),
            "seconds": seconds,
            "events": len(events),
            "publish_ack": _stats([(acked - at) * 1000 for _, _, at, acked in measured]),
            **bench_cpu,
            "load_average_before_after": [load_before[0], os.getloadavg()[0]],
        }
        for n, name in enumerate(("runs", "sessions")):
            latencies: list[float] = []
            timed: list[Timed] = []
            unseen = 0
            for event, pos, at, acked in measured:
                if name == "runs" and event.run_id is None:
                    continue
                offsets, times = seen.get((name, pos.topic, pos.partition), ([], []))
                i = bisect_right(offsets, pos.offset)
                if i == len(offsets):
                    unseen += 1
                else:
                    latencies.append((times[i] - at) * 1000)
                    timed.append((pos.topic, pos.partition, pos.offset, at, acked, times[i]))
            out_[name] = {
                **_stats(latencies),
                "unseen": unseen,
                "goal_p99_ms": 50,
                "breakdown": stage_breakdown(work / f"{name}.jsonl", timed),
                # Load-independent, unlike the latencies: the projector's own CPU.
                "projector_cpu_ms_per_1000_events": round(cpu[n] / len(events) * 1e6, 1),
                # While the bench published: the share of the wall time the
                # projector ran, and the share it was ready to run but waited.
                "projector_ran_share": round(ran[n] / published, 3),
                "projector_waited_for_a_core_share": round(waited[n] / published, 3),
            }
        shutil.rmtree(work, ignore_errors=True)
        return out_


def _stats(ms: list[float]) -> dict[str, Any]:
    if not ms:
        return {"measured_events": 0}
    return {
        "measured_events": len(ms),
        "p50_ms": round(percentile(ms, 0.5), 2),
        "p90_ms": round(percentile(ms, 0.9), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "max_ms": round(max(ms), 2),
    }


# -- memory while rebuilding --------------------------------------------------------------


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def measure_memory(base: Settings, events: int) -> dict[str, Any]:
    async with isolated_deployment(base, "bench") as settings:
        step = 100_000
        for seed, start in enumerate(range(0, events, step)):
            size = min(step, events - start)
            batch = synthetic_events(
                runs=size // 25, sessions=max(1, size // 170), events=size, seed=100 + seed
            )
            await bulk_publish(settings, batch.events)
        pool = await open_pool(settings)
        try:
            await RunsProjection(pool, settings).prepare()
        finally:
            await pool.close()
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "runwire.cli.main",
            "projections",
            "rebuild",
            "runs",
            "--json",
            env=served_env(settings),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        samples: list[tuple[float, float]] = []
        while proc.returncode is None:
            value = rss_mb(proc.pid)
            if value is not None:
                samples.append((time.perf_counter() - started, value))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), timeout=0.25)
        assert proc.stdout is not None
        report = json.loads(await proc.stdout.read())
        quarter = max(1, len(samples) // 4)
        first = max(v for _, v in samples[:quarter])
        last = max(v for _, v in samples[-quarter:])
        return {
            "events": report["records"],
            "rebuild_events_per_s": report["events_per_second"],
            "rss_mb_first_quarter_peak": round(first, 1),
            "rss_mb_last_quarter_peak": round(last, 1),
            "rss_mb_max": round(max(v for _, v in samples), 1),
            "rss_growth_mb": round(last - first, 1),
            "samples": len(samples),
        }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--large", type=int, default=300_000)
    parser.add_argument("--skip", action="append", default=[], help="rebuild | latency | memory")
    parser.add_argument("--poll", nargs=3, metavar=("DSN", "OUT", "UNTIL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.poll:
        await poll_positions(args.poll[0], Path(args.poll[1]), float(args.poll[2]))
        return
    base = Settings()
    # As `runwire projections rebuild` does: the in-process part is the rebuild
    # (the latency part serves its projectors in processes of their own).
    tune_for_rebuild()
    result: dict[str, Any] = {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()}
    if "rebuild" not in args.skip:
        result["rebuild"] = await measure_rebuild(base, args.events, args.repeat)
        for name in ("runs", "sessions", "usage", "memory"):
            r = result["rebuild"][name]
            print(
                f"rebuild {name}: {r['rebuild_events_per_s']}/s vs raw getmany+decode "
                f"{r['raw_getmany_decode_events_per_s']}/s -> {r['ratio']}x (goal >= 0.5x); "
                f"CPU {r['rebuild_cpu_us_per_event']} vs {r['raw_cpu_us_per_event']} us/event "
                f"-> {r['cpu_ratio']}x"
            )
    if "latency" not in args.skip:
        result["latency"] = await measure_latency(base, args.rate, args.seconds)
        lat = result["latency"]
        for name in ("runs", "sessions"):
            print(
                f"publish -> visible ({name}) at {lat['achieved_events_per_s']}/s: "
                f"p50 {lat[name]['p50_ms']} ms, p99 {lat[name]['p99_ms']} ms (goal p99 < 50 ms)"
            )
        print(
            f"  of which publish -> broker ack: p50 {lat['publish_ack']['p50_ms']} ms, "
            f"p99 {lat['publish_ack']['p99_ms']} ms"
        )
        print(
            f"  the bench's own CPU while publishing: publisher {lat['publisher_cpu_percent']}%, "
            f"observer {lat['observer_cpu_percent']}% of a core"
        )
        for name in ("runs", "sessions"):
            print_breakdown(name, lat[name]["breakdown"])
            print(
                f"  {name} projector CPU: {lat[name]['projector_cpu_ms_per_1000_events']} ms "
                f"per 1000 events published; while publishing it ran "
                f"{lat[name]['projector_ran_share']:.0%} of the time and waited for a core "
                f"{lat[name]['projector_waited_for_a_core_share']:.0%}"
            )
        before, after = lat["load_average_before_after"]
        print(f"  load average (1 min) {before:.2f} before publishing, {after:.2f} after")
    if "memory" not in args.skip:
        result["memory"] = await measure_memory(base, args.large)
        mem = result["memory"]
        print(
            f"rebuild of {mem['events']} events: RSS {mem['rss_mb_first_quarter_peak']} MB "
            f"(first quarter) -> {mem['rss_mb_last_quarter_peak']} MB (last quarter), "
            f"max {mem['rss_mb_max']} MB"
        )
    result["load_average_at_end"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "projections.json"
    # Sections skipped this time keep their last figures.
    previous = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**previous, **result}, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
