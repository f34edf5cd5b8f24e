"""The four projectors a session benchmark needs, in this process or as ``runwire serve``.

- ``inline``: :func:`runwire.sessions.embedded.projectors_running`, on this
  process's event loop (what the tests use): their work competes with the
  timed calls for one loop.
- ``processes``: ``runwire serve projector-runs|sessions|transcripts|memory``,
  each its own process, as a deployment runs them; the block starts once
  every one has caught up.

Either way the block gets the prepared projections by name (for lag waits).

Timed (``timed=`` a folder, processes only): each projector runs as
``python bench/served.py --timed NAME FILE``, the served command writing one
JSON line per batch to ``FILE`` (:mod:`runwire.projections.runtime.timings`:
when each partition's records were fetched and decoded, when the apply began
and returned) and one per collector pause; :func:`stage_breakdown` turns
those and the bench's own publish / ack / seen times into each event's
stages. Times are ``time.perf_counter()``, one clock for every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import sys
import time
from bisect import bisect_right
from collections.abc import AsyncIterator, Iterable
from itertools import pairwise
from pathlib import Path
from typing import Any

from runwire.projections.runtime.protocol import Projection
from runwire.sessions.embedded import projectors_running
from runwire.settings import Settings

NAMES = ("runs", "sessions", "transcripts", "memory")


def served_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWIRE_")}
    env.update(
        RUNWIRE_KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
        RUNWIRE_POSTGRES_DSN=settings.postgres_dsn,
        RUNWIRE_REDIS_URL=settings.redis_url,
        RUNWIRE_TOPIC_PREFIX=settings.topic_prefix,
        RUNWIRE_REDIS_KEY_PREFIX=settings.redis_key_prefix,
    )
    return env


@contextlib.asynccontextmanager
async def projectors(
    settings: Settings, mode: str, timed: Path | None = None
) -> AsyncIterator[dict[str, Projection]]:
    """``timed``: a folder; each served projector writes its timings to ``NAME.jsonl`` there."""
    if mode == "inline":
        async with projectors_running(settings) as projections:
            yield projections
        return
    if mode != "processes":
        raise ValueError(f"--projectors: inline or processes, not {mode!r}")
    async with projectors_running(settings, names=()) as projections:
        procs: list[asyncio.subprocess.Process] = []
        try:
            for name in NAMES:
                procs.append(
                    await asyncio.create_subprocess_exec(
                        *serve_command(name, None if timed is None else timed / f"{name}.jsonl"),
                        env=served_env(settings),
                        stdout=asyncio.subprocess.PIPE,
                        stderr=asyncio.subprocess.DEVNULL,
                    )
                )
            for proc in procs:
                assert proc.stdout is not None
                line = await asyncio.wait_for(proc.stdout.readline(), timeout=120)
                if b"caught up" not in line:
                    raise RuntimeError(f"a served projector said {line!r}, not 'caught up'")
            yield projections
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.terminate()
            for proc in procs:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(proc.wait(), timeout=20)


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_queue_seconds(pid: int) -> float:
    """How long process ``pid``'s threads have waited on a run queue for a core so
    far (``/proc/PID/task/*/schedstat``, its second field; 0 where the kernel
    keeps no schedstats). Beside :func:`cpu_seconds`: a projector that waited
    longer for a core than it ran says that its latency is the machine's."""
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int(task.read_text().split()[1])
    return total / 1e9


def serve_command(name: str, timed: Path | None = None) -> list[str]:
    """The command serving projector ``name``; ``timed``: the file its timings go to."""
    if timed is None:
        return [sys.executable, "-m", "runwire.cli.main", "serve", f"projector-{name}"]
    return [sys.executable, str(Path(__file__).resolve()), "--timed", name, str(timed)]


def serve_timed(name: str, path: str) -> None:
    """``runwire serve projector-NAME``, writing its batch timings and the
    collector's pauses to ``path``, one JSON line each."""
    from runwire.cli.main import main as cli
    from runwire.projections.runtime import timings

    out = open(path, "w", buffering=1)  # noqa: SIM115 - the process's life
    write = out.write

    def batch(t: timings.BatchTiming) -> None:
        spans = [[s.topic, s.partition, s.first, s.last, s.fetched, s.decoded] for s in t.spans]
        write(json.dumps({"started": t.started, "applied": t.applied, "spans": spans}) + "\n")

    collecting = [0.0]

    def collector(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collecting[0] = time.perf_counter()
        else:
            write(
                f'{{"gc": {info["generation"]}, "start": {collecting[0]}, '
                f'"end": {time.perf_counter()}}}\n'
            )

    timings.observe(batch)
    gc.callbacks.append(collector)
    _time_fetches(write)
    sys.argv = ["runwire", "serve", f"projector-{name}"]
    if not os.environ.get("BENCH_PROFILE"):
        cli()
        return
    import cProfile

    profile = cProfile.Profile()
    try:
        profile.runcall(cli)
    finally:
        profile.dump_stats(f"{os.environ['BENCH_PROFILE']}.{name}")


def _time_fetches(write: Any) -> None:
    """Note when each of aiokafka's fetch requests was sent and its response
    arrived, and which partitions at which offsets it fetched (a wrapper
    around its private fetch task: this bench process only)."""
    from aiokafka.consumer.fetcher import Fetcher

    fetch = Fetcher._proc_fetch_request

    async def timed(self: Any, assignment: Any, node_id: Any, request: Any) -> Any:
        sent = time.perf_counter()
        result = await fetch(self, assignment, node_id, request)
        if result:
            arrived = time.perf_counter()
            tps = [[t, p, offset] for t, parts in request.topics for p, offset, *_ in parts]
            write(json.dumps({"fetch": tps, "sent": sent, "arrived": arrived}) + "\n")
        return result

    Fetcher._proc_fetch_request = timed


Timed = tuple[str, int, int, float, float, float]
"""An event measured: topic, partition, offset, when it was published, acknowledged, seen."""

STAGES = (
    "publish_to_ack",
    "ack_to_fetch_sent",
    "fetch_sent_to_arrived",
    "arrived_to_fetched",
    "fetched_to_decoded",
    "decoded_to_apply",
    "apply",
    "applied_to_seen",
)
"""Each event's latency, cut where the clock was read: the bench's publish call,
its ack, the consumer sending the fetch request that got the record (negative:
the request was waiting at the broker before the record came), its response
arriving, the projector's ``getmany`` returning the record, the fetch
decoded, the apply beginning (after the one under way), returning, the bench
seeing it.
The apply's end is stamped after its commit: on a starved machine the
observer can see the commit first, and applied -> seen goes negative."""


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50": at(0.5), "p99": at(0.99), "max": round(ordered[-1] * 1000, 2)}


def stage_breakdown(path: Path, measured: Iterable[Timed]) -> dict[str, Any]:
    """Per stage (:data:`STAGES`): p50, p99 and max over ``measured``, and its
    mean over the slowest 1 % (where the p99 goes); the batches' sizes and
    applies; the collector's pauses (all of them, and those inside the
    windows of the slowest 1 %)."""
    # (topic, partition) -> sorted [(first, last, fetched, decoded, started, applied)]
    spans: dict[tuple[str, int], list[tuple[int, int, float, float, float, float]]] = {}
    pauses: list[tuple[float, float, int]] = []
    sizes: list[float] = []
    applies: list[float] = []
    # (topic, partition) -> [(offset fetched from, request sent, response arrived)]
    fetches: dict[tuple[str, int], list[tuple[int, float, float]]] = {}
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if "gc" in entry:
            pauses.append((entry["start"], entry["end"], entry["gc"]))
            continue
        if "fetch" in entry:
            for topic, partition, offset in entry["fetch"]:
                fetches.setdefault((topic, partition), []).append(
                    (offset, entry["sent"], entry["arrived"])
                )
            continue
        sizes.append(sum(last - first + 1 for _, _, first, last, _, _ in entry["spans"]))
        applies.append(entry["applied"] - entry["started"])
        for topic, partition, first, last, fetched, decoded in entry["spans"]:
            spans.setdefault((topic, partition), []).append(
                (first, last, fetched, decoded, entry["started"], entry["applied"])
            )
    for held in spans.values():
        held.sort()
    firsts = {key: [s[0] for s in held] for key, held in spans.items()}
    for asked in fetches.values():
        asked.sort()
    asked_from = {key: [f[0] for f in asked] for key, asked in fetches.items()}
    rows: list[tuple[float, float, list[float]]] = []  # total, sent, stages
    for topic, partition, offset, sent, acked, seen in measured:
        held = spans.get((topic, partition), [])
        i = bisect_right(firsts.get((topic, partition), []), offset) - 1
        if i < 0 or held[i][1] < offset:
            continue
        _, _, fetched, decoded, started, applied = held[i]
        # The last fetch from at or below the offset that arrived before the
        # record was handed over: the one that brought it.
        asked = fetches.get((topic, partition), [])
        j = bisect_right(asked_from.get((topic, partition), []), offset) - 1
        while j >= 0 and asked[j][2] > fetched:
            j -= 1
        request, arrived = (asked[j][1], asked[j][2]) if j >= 0 else (acked, fetched)
        marks = (sent, acked, request, arrived, fetched, decoded, started, applied, seen)
        rows.append((seen - sent, sent, [b - a for a, b in pairwise(marks)]))
    if not rows:
        return {"events_timed": 0}
    # The collector's pauses while the measured events were in flight (not
    # start-up's, which collects everything once before freezing it).
    begin, end = min(r[1] for r in rows), max(r[1] + r[0] for r in rows)
    pauses = [p for p in pauses if p[1] >= begin and p[0] <= end]
    rows.sort(key=lambda r: r[0])
    tail = rows[-max(1, len(rows) // 100) :]
    in_tail = [p for p in pauses if any(r[1] <= p[1] and p[0] <= r[1] + r[0] for r in tail)]
    return {
        "events_timed": len(rows),
        "stages_ms": {name: _ms([r[2][n] for r in rows]) for n, name in enumerate(STAGES)},
        "slowest_1pct_mean_ms": {
            name: round(sum(r[2][n] for r in tail) / len(tail) * 1000, 2)
            for n, name in enumerate(STAGES)
        },
        "batches": len(sizes),
        "records_per_batch": {"p50": sorted(sizes)[len(sizes) // 2], "max": max(sizes)},
        "apply_per_batch_ms": _ms(applies),
        "gc_pauses": {
            "count": len(pauses),
            **(_ms([e - s for s, e, _ in pauses]) if pauses else {}),
            "max_ms_by_generation": {
                g: round(max(e - s for s, e, gen in pauses if gen == g) * 1000, 2)
                for g in sorted({gen for _, _, gen in pauses})
            },
            "in_slowest_1pct": len(in_tail),
        },
    }


def print_breakdown(label: str, breakdown: dict[str, Any]) -> None:
    if not breakdown.get("events_timed"):
        print(f"  {label}: no stage timings")
        return
    stages = breakdown["stages_ms"]
    tail = breakdown["slowest_1pct_mean_ms"]
    print(
        f"  {label} stages p50/p99 ms: "
        + ", ".join(f"{k} {v['p50']}/{v['p99']}" for k, v in stages.items())
    )
    print(f"  {label} slowest 1% (mean ms): " + ", ".join(f"{k} {v}" for k, v in tail.items()))
    gcp = breakdown["gc_pauses"]
    print(
        f"  {label} batches {breakdown['batches']}, records/batch p50 "
        f"{breakdown['records_per_batch']['p50']} max {breakdown['records_per_batch']['max']}, "
        f"apply p50/p99 {breakdown['apply_per_batch_ms']['p50']}/"
        f"{breakdown['apply_per_batch_ms']['p99']} ms; gc pauses {gcp['count']}"
        + (
            f" (p99 {gcp['p99']} ms; max by generation {gcp['max_ms_by_generation']})"
            if gcp["count"]
            else ""
        )
        + f", {gcp['in_slowest_1pct']} within the slowest 1%"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--timed"] and len(sys.argv) == 4:
        serve_timed(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"usage: {sys.argv[0]} --timed NAME FILE")
