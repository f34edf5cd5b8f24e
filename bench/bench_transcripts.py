"""Transcript cache: rebuild rate vs raw aiokafka, and publish -> visible latency.

- ``rebuild``: ``runwire projections rebuild transcripts`` in-process (the
  runtime's rebuild into a new Redis generation, then the switch) over a log
  of ``--events`` events of ``--runs`` runs, against ``raw``: a group-less
  aiokafka consumer doing ``getmany`` + ``Codec.decode`` over the same log,
  in the same run, alternating, ``--repeat`` rounds: the ratios are of the
  medians (CPU of this process per event, and rate). The process is tuned as
  ``runwire projections rebuild`` tunes its own (``tune_for_rebuild``: the
  collector's thresholds), for both sides. Goal: rebuild >= 0.5x raw.
- ``latency``: ``runwire serve projector-transcripts`` in its own process;
  this process publishes at a sustained ``--rate`` events/s (20 events every
  10 ms) for ``--seconds`` and polls the live generation's positions in
  Redis every millisecond. An event is visible once its partition's stored
  position is past its offset (the transcript is written in the same atomic
  step). Latency runs from the ``publish_many`` call (so it includes the
  producer's linger and the broker's ack) to the first poll that sees it;
  the first second is warm-up and left out. Goal: p99 < 25 ms. The
  projector runs timed (``served.py``: the served command with
  :mod:`runwire.projections.runtime.timings`, one line per batch), so each
  event's latency is broken into its stages (``served.STAGES``): publish ->
  broker ack, ack -> the fetch request that got it sent -> its response
  arrived -> fetched (the consumer's ``getmany`` returned it),
  fetched -> decoded, decoded -> apply began (waiting behind the batch being
  applied), the apply itself (snapshot, fold, commit), applied -> seen (this
  process's poll); as p50 / p99 and as the mean of the slowest 1 % (where
  the p99 goes), with the collector's pauses. Clocks are
  ``time.perf_counter()``, the same in both processes. "Applied" is stamped
  when the apply returns, after Redis has the commit: on a starved machine
  the poll can see it first, and applied -> seen goes negative.
- ``catch_up``: the served projector draining a backlog of ``--events / 2``
  events (start-up included): the highest rate it can sustain here. When it
  is near or below ``--rate``, latency measures queueing, not the projection.
- The load average is recorded: the figures only compare runs on a quiet machine.

Run against a running stack (``runwire stack up``, or
``RUNWIRE_HOME=.runwire/test`` for the test stack):
    .venv/bin/python bench/bench_transcripts.py [--events N] [--runs R] [--rate E] [--seconds S]
        [--skip rebuild|catch_up|latency ...]
Writes bench/results/transcripts.json (without the figures of a skipped measure).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from runwire.contract.codec import default_codec
from runwire.contract.events import Event
from runwire.infra.isolation import isolated_deployment
from runwire.log import Position, Publisher
from runwire.projections.runtime.rebuild import rebuild
from runwire.projections.runtime.tuning import tune_for_rebuild
from runwire.projections.transcripts.keys import parse_position_field
from runwire.projections.transcripts.projection import TranscriptProjection
from runwire.projections.transcripts.redis_store import RedisTranscriptStore
from runwire.settings import Settings

REPO = Path(__file__).resolve().parents[1]
PROJECTOR_STDERR: int | None = asyncio.subprocess.DEVNULL
RESULTS = Path(__file__).parent / "results"

sys.path.insert(0, str(REPO))  # the workload generator lives with the tests
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tests.support.transcript_workload import workload  # noqa: E402

from served import print_breakdown, serve_command, stage_breakdown  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def publish_all(settings: Settings, events: list[Event]) -> None:
    async with Publisher(settings) as publisher:
        for start in range(0, len(events), 5000):
            await publisher.publish_many(events[start : start + 5000])


# -- rebuild rate ----------------------------------------------------------------


async def raw_read(settings: Settings) -> tuple[int, float]:
    """getmany + decode of the whole run-events topic; (records, seconds)."""
    codec = default_codec()
    started = time.perf_counter()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=1_048_576,
        fetch_max_bytes=16 * 1_048_576,
    )
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(settings.run_events)
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(settings.run_events) or set()
        tps = [TopicPartition(settings.run_events, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        count = 0
        while remaining:
            fetched = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, records in fetched.items():
                for record in records:
                    codec.decode(record.value)
                    count += 1
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return count, time.perf_counter() - started


async def measure_rebuild(base: Settings, events: int, runs: int, repeat: int) -> dict[str, Any]:
    async with isolated_deployment(base, "bench") as settings:
        log = workload(7, runs=runs, sessions=max(1, runs // 7))[:events]
        await publish_all(settings, log)
        client = aioredis.Redis.from_url(settings.redis_url)
        store = RedisTranscriptStore(client, settings.redis_key_prefix)
        projection = TranscriptProjection(store, settings)
        raw_rates: list[float] = []
        rebuild_rates: list[float] = []
        raw_cpu: list[float] = []
        rebuild_cpu: list[float] = []
        try:
            for _ in range(repeat):
                cpu = time.process_time()
                count, seconds = await raw_read(settings)
                raw_cpu.append((time.process_time() - cpu) / count * 1e6)
                raw_rates.append(count / seconds)
                cpu = time.process_time()
                report = await rebuild(projection, settings)
                rebuild_cpu.append((time.process_time() - cpu) / report.records * 1e6)
                rebuild_rates.append(report.records / report.seconds)
            runs_stored = len(
                [k async for k in client.scan_iter(match=store.keys.generation(repeat).meta("*"))]
            )
        finally:
            await client.aclose()
        raw, built = statistics.median(raw_rates), statistics.median(rebuild_rates)
        raw_us, rebuild_us = statistics.median(raw_cpu), statistics.median(rebuild_cpu)
        return {
            "events": len(log),
            "runs": runs_stored,
            "raw_getmany_decode_events_per_s": round(raw),
            "rebuild_events_per_s": round(built),
            "ratio": round(built / raw, 3),
            "goal_ratio": 0.5,
            # CPU of this process per event (Redis' own work on the scripts not
            # included): what the rate would be without other load on the machine.
            "raw_cpu_us_per_event": round(raw_us, 1),
            "rebuild_cpu_us_per_event": round(rebuild_us, 1),
            "cpu_ratio": round(raw_us / rebuild_us, 3),
            "rounds": {
                "raw_events_per_s": [round(r) for r in raw_rates],
                "rebuild_events_per_s": [round(r) for r in rebuild_rates],
                "raw_cpu_us_per_event": [round(c, 1) for c in raw_cpu],
                "rebuild_cpu_us_per_event": [round(c, 1) for c in rebuild_cpu],
            },
            "repeat": repeat,
        }


# -- publish -> visible latency ------------------------------------------------------


def projector_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "RUNWIRE_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "RUNWIRE_REDIS_URL": settings.redis_url,
            "RUNWIRE_POSTGRES_DSN": settings.postgres_dsn,
            "RUNWIRE_TOPIC_PREFIX": settings.topic_prefix,
            "RUNWIRE_REDIS_KEY_PREFIX": settings.redis_key_prefix,
        }
    )
    return env


async def start_projector(
    settings: Settings, stages: Path | None = None
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *serve_command("transcripts", stages),
        env=projector_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=PROJECTOR_STDERR,
    )


async def measure_catch_up(base: Settings, events: int) -> dict[str, Any]:
    """How fast the served projector drains a backlog: the highest rate it can sustain."""
    async with isolated_deployment(base, "bench") as settings:
        client = aioredis.Redis.from_url(settings.redis_url)
        store = RedisTranscriptStore(client, settings.redis_key_prefix)
        proc: asyncio.subprocess.Process | None = None
        try:
            log = workload(11, runs=max(50, events // 25), sessions=50)[:events]
            await publish_all(settings, log)
            started = time.perf_counter()
            proc = await start_projector(settings)
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=300)
            assert b"caught up" in line, line
            elapsed = time.perf_counter() - started
            applied = sum((await store.positions(0)).values())
            return {
                "events": applied,
                "seconds_incl_start": round(elapsed, 2),
                "events_per_s": round(applied / elapsed),
            }
        finally:
            if proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                await proc.wait()
            await client.aclose()


async def measure_latency(base: Settings, rate: int, seconds: float) -> dict[str, Any]:
    async with isolated_deployment(base, "bench") as settings:
        stages_file = RESULTS / f".stages-{os.getpid()}.jsonl"
        proc = await start_projector(settings, stages_file)
        client = aioredis.Redis.from_url(settings.redis_url)
        store = RedisTranscriptStore(client, settings.redis_key_prefix)
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
            assert b"caught up" in line, line
            per_tick = max(1, rate // 100)
            total = int(rate * seconds)
            events = workload(9, runs=max(50, total // 25), sessions=50)[:total]
            pending: dict[int, list[tuple[int, float, float]]] = {}  # offset, sent, acked
            # (sent at, latency, ack -> visible, partition, offset, acked at, seen at)
            latencies: list[tuple[float, float, float, int, int, float, float]] = []
            done = asyncio.Event()

            async def poll() -> None:
                key = store.keys.generation(0).positions
                while not (done.is_set() and not any(pending.values())):
                    stored = await client.hgetall(key)
                    now = time.perf_counter()
                    for field, value in stored.items():
                        text = field.decode() if isinstance(field, bytes) else str(field)
                        partition = parse_position_field(text).partition
                        waiting = pending.get(partition)
                        if not waiting:
                            continue
                        position = int(value)
                        kept = []
                        for offset, sent, acked in waiting:
                            if offset < position:
                                latencies.append(
                                    (sent, now - sent, now - acked, partition, offset, acked, now)
                                )
                            else:
                                kept.append((offset, sent, acked))
                        pending[partition] = kept
                    await asyncio.sleep(0.001)

            async def send(publisher: Publisher, batch: list[Event], sent: float) -> None:
                positions: list[Position] = await publisher.publish_many(batch)
                acked = time.perf_counter()
                acks.append(acked - sent)
                for p in positions:
                    pending.setdefault(p.partition, []).append((p.offset, sent, acked))

            acks: list[float] = []
            poller = asyncio.create_task(poll())
            sends: list[asyncio.Task[None]] = []
            async with Publisher(settings) as publisher:
                started = time.perf_counter()
                for i, start in enumerate(range(0, len(events), per_tick)):
                    target = started + i * 0.01
                    delay = target - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    sends.append(
                        asyncio.create_task(
                            send(publisher, events[start : start + per_tick], time.perf_counter())
                        )
                    )
                await asyncio.gather(*sends)
                elapsed = time.perf_counter() - started
            done.set()
            await asyncio.wait_for(poller, timeout=60)
            measured = [entry for entry in latencies if entry[0] - started >= 1.0]
            warm = [entry[1] * 1000 for entry in measured]
            after_ack = [entry[2] * 1000 for entry in measured]
            ack_ms = [a * 1000 for a in acks]
            return {
                "events": len(events),
                "target_events_per_s": rate,
                "achieved_events_per_s": round(len(events) / elapsed),
                "measured_events": len(warm),
                "p50_ms": round(percentile(warm, 0.5), 2),
                "p90_ms": round(percentile(warm, 0.9), 2),
                "p99_ms": round(percentile(warm, 0.99), 2),
                "max_ms": round(max(warm), 2),
                "goal_p99_ms": 25,
                "publish_to_ack_p50_ms": round(percentile(ack_ms, 0.5), 2),
                "publish_to_ack_p99_ms": round(percentile(ack_ms, 0.99), 2),
                "ack_to_visible_p50_ms": round(percentile(after_ack, 0.5), 2),
                "ack_to_visible_p99_ms": round(percentile(after_ack, 0.99), 2),
                "producer_linger_ms": settings.producer_linger_ms,
                "breakdown": stage_breakdown(
                    stages_file,
                    [
                        (settings.run_events, partition, offset, sent, acked, seen)
                        for sent, _, _, partition, offset, acked, seen in measured
                    ],
                ),
            }
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            await proc.wait()
            await client.aclose()
            stages_file.unlink(missing_ok=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rate", type=int, default=2_000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=("rebuild", "catch_up", "latency"),
        help="leave a measure out (repeatable); its figures are not written",
    )
    args = parser.parse_args()

    base = Settings()
    # As ``runwire projections rebuild`` does (the served projector tunes its
    # own process, as ``runwire serve`` does).
    tune_for_rebuild()
    result: dict[str, Any] = {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()}
    if "rebuild" not in args.skip:
        await report_rebuild(result, base, args)
    if "catch_up" not in args.skip:
        await report_catch_up(result, base, args)
    if "latency" not in args.skip:
        await report_latency(result, base, args)
    result["load_average_at_end"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "transcripts.json").write_text(json.dumps(result, indent=2) + "\n")


async def report_rebuild(result: dict[str, Any], base: Settings, args: argparse.Namespace) -> None:
    result["rebuild"] = await measure_rebuild(base, args.events, args.runs, args.repeat)
    r = result["rebuild"]
    print(
        f"rebuild: {r['rebuild_events_per_s']:,} events/s vs raw getmany+decode "
        f"{r['raw_getmany_decode_events_per_s']:,} events/s -> ratio {r['ratio']} "
        f"(goal >= {r['goal_ratio']}) over {r['events']:,} events / {r['runs']:,} runs; "
        f"CPU per event {r['rebuild_cpu_us_per_event']} us vs {r['raw_cpu_us_per_event']} us "
        f"-> CPU ratio {r['cpu_ratio']}"
    )


async def report_catch_up(result: dict[str, Any], base: Settings, args: argparse.Namespace) -> None:
    result["catch_up"] = await measure_catch_up(base, args.events // 2)
    c = result["catch_up"]
    print(
        f"served projector draining a backlog: {c['events_per_s']:,} events/s "
        f"({c['events']:,} events in {c['seconds_incl_start']} s, start-up included)"
    )


async def report_latency(result: dict[str, Any], base: Settings, args: argparse.Namespace) -> None:
    result["latency"] = await measure_latency(base, args.rate, args.seconds)
    lat = result["latency"]
    print(
        f"publish -> visible at {lat['achieved_events_per_s']:,} events/s: "
        f"p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms "
        f"(goal p99 < {lat['goal_p99_ms']} ms; p99/goal {lat['p99_ms'] / lat['goal_p99_ms']:.2f}); "
        f"of which publish -> ack p50 {lat['publish_to_ack_p50_ms']} / p99 "
        f"{lat['publish_to_ack_p99_ms']} ms, ack -> visible p50 {lat['ack_to_visible_p50_ms']} / "
        f"p99 {lat['ack_to_visible_p99_ms']} ms"
    )
    print_breakdown("transcripts", lat["breakdown"])


if __name__ == "__main__":
    asyncio.run(main())
