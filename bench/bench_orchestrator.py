"""Orchestrator throughput and per-turn cost vs raw publish + consume, same run, same cluster.

Each turn is one run: ``run_started`` + a user message in, and out the
acknowledgement (``running``) then the answer batch (thinking, text, usage,
``run_completed``): two publishes, five events. The model is the local one
with no latency, so what is measured is everything but the model.

- ``orchestrator``: the real service (follower, per-run fold, ledger,
  provider validation, model call, deterministic ids, publishes), live.
- ``raw``: the floor for the same traffic: a plain aiokafka consumer reads
  the same input and, per user message, publishes the same five events with
  the same Publisher (the acknowledgement, then the other four pipelined) —
  no fold, no transcript, no validation, no model, no atomic batch.

Both sides are fed the same way (runs published at full speed, many per
record batch) and timed from the first publish to the last answer read
back; the CPU per turn is counted until the service has also seen its last
answer acknowledged (its own end of every turn; stopping it earlier would
leave that work out and cancel it, and the cancelled turns' garbage would
fall on the next round's collector, so each round also ends with a full
collection). The machine's load average is recorded: other processes on the
same cores move every figure. Per-turn figures are from reading the delta to the
broker's ack of the answer (minus the model call, for the orchestrator).

The process sets its garbage collector as every ``runwire serve`` process
does (:func:`runwire.telemetry.gc_tuning.tune`; ``--default-gc``: CPython's).

Run against a running stack (``runwire stack up``, or
``RUNWIRE_HOME=.runwire/test`` for the test stack):
    .venv/bin/python bench/bench_orchestrator.py [--turns N] [--inflight K] [--default-gc]
Writes bench/results/orchestrator.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from runwire.contract.codec import default_codec
from runwire.contract.events import Event, RunPhase, RunStarted, UserMessage
from runwire.infra.isolation import isolated_deployment
from runwire.log import Publisher
from runwire.log.clients import topic_partitions
from runwire.providers.base import ModelRequest
from runwire.providers.local import LocalModel
from runwire.services.orchestrator.answers import acknowledgement, answer_events
from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.services.run_context import RunContext
from runwire.settings import Settings
from runwire.telemetry import gc_tuning
from runwire.transcript.messages import Message, TextPart

RESULTS = Path(__file__).parent / "results"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_events(i: int) -> list[Event]:
    """``run_started`` + a user message: one run, one turn."""
    run_id = str(uuid.uuid4())
    session = f"bench-{i % 50}"
    start = Event.create(RunStarted(agent_id="bench"), run_id=run_id, session_id=session)
    prompt = Event.create(
        UserMessage(parts=[f"Hello, my name is User{i}."]),
        run_id=run_id,
        session_id=session,
        causation_id=start.event_id,
        index=0,
    )
    return [start, prompt]


async def feed(settings: Settings, turns: int, rate: float | None = None) -> None:
    """Publish ``turns`` runs (atomically per run), all at once or ``rate`` per second."""
    async with Publisher(settings) as batcher:
        if rate is None:
            await asyncio.gather(*(batcher.publish_message(run_events(i)) for i in range(turns)))
            return
        sent: list[asyncio.Future[Any]] = []
        tick = 0.01
        per_tick = max(1, round(rate * tick))
        next_at = time.perf_counter()
        for i in range(0, turns, per_tick):
            for j in range(i, min(turns, i + per_tick)):
                sent.append(asyncio.ensure_future(batcher.publish_message(run_events(j))))
            next_at += tick
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        await asyncio.gather(*sent)


async def count_completed(settings: Settings, turns: int) -> float:
    """Read the topic until ``turns`` run_completed events are in; returns when the last was."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        parts = await topic_partitions(consumer, settings.run_events)
        tps = [TopicPartition(settings.run_events, p) for p in parts]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)  # the topic is this round's alone
        seen = 0
        while seen < turns:
            batch = await consumer.getmany(timeout_ms=100)
            for records in batch.values():
                for record in records:
                    if dict(record.headers).get("runwire-type") == b"run_completed":
                        seen += 1
        return time.perf_counter()
    finally:
        await consumer.stop()


def observe_completed(settings: Settings, turns: int) -> tuple[float, float]:
    """:func:`count_completed` on a thread and event loop of its own: when the last
    run completed, and the CPU seconds the observing took (the harness's, not
    the measured service's: the throughput round takes them out of its figure)."""
    cpu = time.thread_time()
    ended = asyncio.run(count_completed(settings, turns))
    return ended, time.thread_time() - cpu


Serve = Callable[[Settings, dict[str, Any]], Coroutine[Any, Any, None]]


async def serve_orchestrator(settings: Settings, sink: dict[str, Any]) -> None:
    async with orchestrator_service(settings, provider=LocalModel(), history=False) as orchestrator:
        sink["answered"] = lambda: orchestrator.stats.answers
        try:
            await asyncio.Event().wait()
        finally:
            sink["per_turn"] = list(orchestrator.stats.overhead)
            sink["answers"] = orchestrator.stats.answers


async def serve_raw(settings: Settings, sink: dict[str, Any]) -> None:
    """The same traffic answered by hand: consume, publish the same events, nothing else."""
    codec = default_codec()
    latencies: list[float] = sink.setdefault("per_turn", [])
    done = [0]
    sink["answered"] = lambda: done[0]
    # One answer, made once: the raw side does no model work at all.
    sample = LocalModel().respond(
        ModelRequest(
            messages=(Message(role="user", parts=(TextPart(text="Hello, my name is User0."),)),),
            thinking=True,
        )
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        group_id=f"{settings.topic_prefix}bench-raw",
    )
    async with Publisher(settings) as publisher:
        await consumer.start()
        consumer.subscribe([settings.run_events])
        tasks: set[asyncio.Task[None]] = set()

        async def answer(event: Any, read_at: float) -> None:
            context = RunContext.of(event)
            await publisher.publish(acknowledgement(context, event.event_id, RunPhase.PLANNING))
            await publisher.publish_many(answer_events(context, event.event_id, sample))
            latencies.append(time.perf_counter() - read_at)
            done[0] += 1

        try:
            while True:
                batch = await consumer.getmany(timeout_ms=100, max_records=2000)
                now = time.perf_counter()
                for records in batch.values():
                    for record in records:
                        if dict(record.headers).get("runwire-type") != b"user_message":
                            continue
                        task = asyncio.create_task(answer(codec.decode(record.value), now))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
        finally:
            for task in tasks:
                task.cancel()
            await consumer.stop()


async def answered(sink: dict[str, Any], turns: int) -> None:
    """Until the service has seen ``turns`` of its answers acknowledged (a minute at most)."""
    async with asyncio.timeout(60.0):
        while "answered" not in sink or sink["answered"]() < turns:  # noqa: ASYNC110 - its count
            await asyncio.sleep(0.002)


async def stopped(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def throughput(base: Settings, serve: Serve, turns: int) -> dict[str, Any]:
    """A backlog of ``turns`` runs, then the service starts: turns/s and CPU per turn
    (every thread of the process but the one observing the answers)."""
    async with isolated_deployment(base, "bench") as settings:
        await feed(settings, turns)
        sink: dict[str, Any] = {}
        cpu = time.process_time()
        started = time.perf_counter()
        waiter = asyncio.create_task(asyncio.to_thread(observe_completed, settings, turns))
        server = asyncio.create_task(serve(settings, sink))
        ended, observing = await waiter
        # The service's own end of those turns (their answers' acks settled)
        # is part of what they cost; stopping before it would cancel that
        # work, and the cancelled turns' garbage would fall on the next round.
        await answered(sink, turns)
        cpu = time.process_time() - cpu - observing
        await stopped(server)
    # Nothing of this round left for the next one's collector to walk.
    gc.collect()
    seconds = ended - started
    return {
        "seconds": round(seconds, 3),
        "turns_per_s": round(turns / seconds, 1),
        "cpu_ms_per_turn": round(cpu * 1000 / turns, 3),
    }


async def latency(base: Settings, serve: Serve, turns: int, rate: float) -> dict[str, Any]:
    """Live traffic at ``rate`` runs/s: time per turn from reading the delta to the ack."""
    async with isolated_deployment(base, "bench") as settings:
        sink: dict[str, Any] = {}
        server = asyncio.create_task(serve(settings, sink))
        await asyncio.sleep(3.0)  # joined the group, at the (empty) log end
        waiter = asyncio.create_task(count_completed(settings, turns))
        await feed(settings, turns, rate)
        await waiter
        await stopped(server)
    ms = [x * 1000 for x in sink["per_turn"]]
    return {
        "rate_per_s": rate,
        "per_turn_p50_ms": round(percentile(ms, 0.5), 2),
        "per_turn_p99_ms": round(percentile(ms, 0.99), 2),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=3000, help="backlog for the throughput round")
    parser.add_argument("--live-turns", type=int, default=1000, help="turns of the latency round")
    parser.add_argument("--rate", type=float, default=100.0, help="runs/s of the latency round")
    parser.add_argument(
        "--default-gc", action="store_true", help="CPython's collector settings, not a process's"
    )
    args = parser.parse_args()
    if not args.default_gc:
        gc_tuning.tune()  # as a runwire serve process starts

    base = Settings()
    result: dict[str, Any] = {
        "turns": args.turns,
        "cpus": os.cpu_count(),
        "gc": "default" if args.default_gc else f"tuned {gc_tuning.THRESHOLDS}, start-up frozen",
        "load_average_before": round(os.getloadavg()[0], 2),
    }
    for name, serve in (("raw", serve_raw), ("orchestrator", serve_orchestrator)):
        result[name] = {
            **await throughput(base, serve, args.turns),
            **await latency(base, serve, args.live_turns, args.rate),
        }
    raw, orch = result["raw"], result["orchestrator"]
    result["throughput_ratio"] = round(orch["turns_per_s"] / raw["turns_per_s"], 3)
    result["extra_ms_per_turn_p50"] = round(orch["per_turn_p50_ms"] - raw["per_turn_p50_ms"], 2)
    result["extra_cpu_ms_per_turn"] = round(orch["cpu_ms_per_turn"] - raw["cpu_ms_per_turn"], 3)
    result["load_average_after"] = round(os.getloadavg()[0], 2)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "orchestrator.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(
        f"turns/s: orchestrator {orch['turns_per_s']} vs raw {raw['turns_per_s']} "
        f"(ratio {result['throughput_ratio']}); per turn at {args.rate:g} runs/s, p50 "
        f"{orch['per_turn_p50_ms']} ms vs raw {raw['per_turn_p50_ms']} ms, p99 "
        f"{orch['per_turn_p99_ms']} ms vs {raw['per_turn_p99_ms']} ms; CPU per turn "
        f"{orch['cpu_ms_per_turn']} ms vs {raw['cpu_ms_per_turn']} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
