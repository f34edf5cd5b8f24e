"""The cost of tracing: publish and orchestrator throughput with tracing off and on, same run.

Tracing on means what ``OTEL_TRACES_EXPORTER`` gives a process, at 100%
sampling (the SDK's default sampler): every publish call and every handled
record is in a span (one per operation, not per record: see
:mod:`runwire.telemetry.otel`), every record carries the W3C context in its
headers, and model and tool calls get their spans.

- ``none``: spans made, sampled and ended, nothing exported
  (``OTEL_TRACES_EXPORTER=none``: the context still travels).
- ``console``: runwire's console exporter (one line per span) behind the
  batch processor, writing to /dev/null (the exporter's work paid on its own
  thread, and counted). Both are the providers
  :func:`runwire.telemetry.otel.provider_from_env` builds, as a process gets them.

Measured, off and the two ``on`` variants interleaved round after round (in
another order each round) so that noise on a shared machine hits all alike:

- publish: ``Publisher.publish_many`` of the sample events, pipelined
  (:mod:`bench_publish`'s SDK side), events/s.
- orchestrator: a backlog of runs answered by the real orchestrator
  (:mod:`bench_orchestrator`'s throughput round), turns/s.
- orchestrator latency: live runs at ``--rate`` runs/s
  (:mod:`bench_orchestrator`'s latency round): each turn's time from
  reading its delta to the broker's ack of the answer, p50 and p99; what a
  user waiting on a turn feels of tracing (``--latency-rounds`` rounds).

Both run with the garbage collector set as every ``runwire serve`` process
sets it (:func:`runwire.telemetry.gc_tuning.tune`), tracing off and on alike;
``--default-gc`` measures with CPython's defaults instead. The collections
each variant triggered and the CPU time they took are recorded per round.

Beside them, the floor (``sdk_floor``): the CPU a turn of the two spans a
traced turn needs, made with the SDK alone (its ``start_as_current_span``,
the same attributes, 500 turns interleaved), less the same loop without
spans; printed with what tracing costs a turn over it and what share of an
untraced turn the floor already is. And what a backlog's collector walks
for tracing (``held_while_under_way``): the tracked objects a traced turn
holds while under way beyond an untraced one, runwire's and the SDK's own
spans', counted (the load does not move it).

Two overheads, of the medians: CPU (``on/off - 1`` of the process's CPU
time per event or turn, every thread counted, so the exporter's work too,
but the one observing the answers: the harness's)
and throughput (``1 - on/off``). The goal is under 10%. On a shared
machine the throughput moves with everyone else's load (the load average
is recorded); the CPU time is the steadier measure of what tracing costs.

Run against a running stack (``runwire stack up``, or
``RUNWIRE_HOME=.runwire/test`` for the test stack):
    .venv/bin/python bench/bench_tracing.py [--events N] [--turns N] [--repeat K] [--default-gc]
Writes bench/results/tracing.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from bench_codec import events as sample_events
from bench_orchestrator import latency, serve_orchestrator, throughput
from bench_publish import CHUNK
from runwire.contract.events import Event
from runwire.infra.topics import load_topics, provision_topics
from runwire.log import Publisher
from runwire.settings import Settings
from runwire.telemetry import gc_tuning, tracing
from runwire.telemetry.otel import REMEMBERED, Tracing, provider_from_env

RESULTS = Path(__file__).parent / "results"
GOAL = 0.10


def _provider(exporter: str) -> Callable[[], TracerProvider]:
    """The provider ``OTEL_TRACES_EXPORTER=<exporter>`` gives a process (console: to /dev/null)."""

    def make() -> TracerProvider:
        sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
        return provider_from_env("bench", {"OTEL_TRACES_EXPORTER": exporter}, console=sink)

    return make


VARIANTS: dict[str, Callable[[], TracerProvider] | None] = {
    "off": None,
    "none": _provider("none"),
    "console": _provider("console"),
}


@contextlib.contextmanager
def traced(variant: str) -> Iterator[None]:
    make = VARIANTS[variant]
    if make is None:
        yield
        return
    provider = make()
    active = Tracing(provider)
    # As in a process that has run for a while: its memory of read records'
    # contexts full, so each record read also forgets the oldest.
    header = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    for i in range(REMEMBERED):
        active.remember(f"earlier-{i}", header)
    tracing.enable(active)
    try:
        yield
    finally:
        tracing.disable()
        provider.shutdown()


async def publish_rate(publisher: Publisher, events: list[Event]) -> tuple[float, float]:
    """Events/s and CPU microseconds per event (every thread of the process)."""
    cpu = time.process_time()
    started = time.perf_counter()
    for i in range(0, len(events), CHUNK):
        await publisher.publish_many(events[i : i + CHUNK])
    seconds = time.perf_counter() - started
    return len(events) / seconds, (time.process_time() - cpu) * 1e6 / len(events)


async def publish_rounds(settings: Settings, events: list[Event], repeat: int) -> dict[str, Any]:
    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
    cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
    async with Publisher(settings) as publisher:
        await publish_rate(publisher, events)  # warm up
        for round_ in range(repeat):
            for variant in rotated(round_):
                with traced(variant):
                    rate, us = await publish_rate(publisher, events)
                rates[variant].append(rate)
                cpu[variant].append(us)
    return summarize(rates, "events_per_s", cpu, "cpu_us_per_event")


def rotated(round_: int) -> list[str]:
    """The variants in another order each round (off first, then second, ...):
    a round's position (a warm cache, the load rising) favours none of them."""
    names = list(VARIANTS)
    shift = round_ % len(names)
    return names[shift:] + names[:shift]


class Collections:
    """The collector's runs while counting: how many per generation, their CPU time."""

    def __init__(self) -> None:
        self.counts = [0, 0, 0]
        self.seconds = 0.0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.counts[info["generation"]] += 1
            self.seconds += time.thread_time() - self._started

    def close(self) -> None:
        gc.callbacks.remove(self._callback)


async def orchestrator_rounds(base: Settings, turns: int, repeat: int) -> dict[str, Any]:
    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
    cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
    gc_ms: dict[str, list[float]] = {v: [] for v in VARIANTS}
    gc_runs: dict[str, list[list[int]]] = {v: [] for v in VARIANTS}
    loads: list[float] = []
    for round_ in range(repeat):
        for variant in rotated(round_):
            with traced(variant):
                # (Counted from the feed on: a round's collections, not split by phase.)
                collections = Collections()
                try:
                    result = await throughput(base, serve_orchestrator, turns)
                finally:
                    collections.close()
            rates[variant].append(result["turns_per_s"])
            cpu[variant].append(result["cpu_ms_per_turn"])
            gc_ms[variant].append(round(collections.seconds * 1000 / turns, 3))
            gc_runs[variant].append(collections.counts)
        loads.append(round(os.getloadavg()[0], 2))
    out = summarize(rates, "turns_per_s", cpu, "cpu_ms_per_turn")
    out["gc_cpu_ms_per_turn_median"] = {v: statistics.median(ms) for v, ms in gc_ms.items()}
    out["gc_collections_per_round_by_generation"] = gc_runs
    out["load_average_per_round"] = loads
    return out


async def latency_rounds(base: Settings, turns: int, rate: float, repeat: int) -> dict[str, Any]:
    """Per-turn latency of live runs, each variant in turn, round after round."""
    p50: dict[str, list[float]] = {v: [] for v in VARIANTS}
    p99: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for round_ in range(repeat):
        for variant in rotated(round_):
            with traced(variant):
                result = await latency(base, serve_orchestrator, turns, rate)
            p50[variant].append(result["per_turn_p50_ms"])
            p99[variant].append(result["per_turn_p99_ms"])
    off = statistics.median(p50["off"])
    out: dict[str, Any] = {"rate_per_s": rate, "turns_per_round": turns}
    for variant in VARIANTS:
        out[f"{variant}_per_turn_p50_ms_median"] = statistics.median(p50[variant])
        out[f"{variant}_per_turn_p99_ms_median"] = statistics.median(p99[variant])
        if variant != "off":
            out[f"{variant}_p50_overhead"] = round(statistics.median(p50[variant]) / off - 1, 3)
    out["rounds_p50_ms"] = p50
    out["rounds_p99_ms"] = p99
    return out


async def sdk_floor(turns: int, inflight: int) -> dict[str, float]:
    """CPU microseconds a turn of the two spans a traced turn needs, made with the
    SDK alone: the floor runwire's tracing stands on.

    Per turn, as the orchestrator makes them: a CONSUMER span under a remote
    parent (the delta's record) with two attributes, current for the turn,
    and under it the model call's CLIENT span with two attributes at the
    start and three at the end; ``inflight`` turns interleaved (each yields
    to the loop between its steps, as a turn awaits its I/O), the provider
    ``OTEL_TRACES_EXPORTER=none`` gives. Less the same loop without spans.
    """
    provider = _provider("none")()
    tracer = provider.get_tracer("runwire")
    parents = [
        trace.set_span_in_context(
            NonRecordingSpan(
                SpanContext(
                    0x0AF7651916CD43DD8448EB211C80319C + i,
                    0xB7AD6B7169203331,
                    is_remote=True,
                    trace_flags=TraceFlags(TraceFlags.SAMPLED),
                )
            )
        )
        for i in range(inflight)
    ]

    async def traced_turn(i: int) -> None:
        with tracer.start_as_current_span(
            "orchestrator answer",
            context=parents[i % inflight],
            kind=SpanKind.CONSUMER,
            attributes={"runwire.run.id": f"run-{i}", "runwire.event.id": f"event-{i}"},
        ):
            await asyncio.sleep(0)
            with tracer.start_as_current_span(
                "chat local",
                kind=SpanKind.CLIENT,
                attributes={"gen_ai.system": "local", "gen_ai.request.model": "local"},
            ) as span:
                await asyncio.sleep(0)
                span.set_attributes(
                    {
                        "gen_ai.usage.input_tokens": 10,
                        "gen_ai.usage.output_tokens": 20,
                        "gen_ai.response.finish_reasons": "end_turn",
                    }
                )
            await asyncio.sleep(0)

    async def bare_turn(i: int) -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    async def cpu_us(turn: Callable[[int], Any]) -> float:
        cpu = time.process_time()
        for start in range(0, turns, inflight):
            await asyncio.gather(*(turn(i) for i in range(start, min(turns, start + inflight))))
        return (time.process_time() - cpu) * 1e6 / turns

    spans: list[float] = []
    bare: list[float] = []
    for _ in range(5):
        spans.append(await cpu_us(traced_turn))
        bare.append(await cpu_us(bare_turn))
    provider.shutdown()
    return {
        "two_spans_cpu_us_per_turn": round(statistics.median(spans) - statistics.median(bare), 1),
        "inflight": inflight,
    }


async def held_objects(inflight: int) -> dict[str, float]:
    """Objects the collector tracks that a traced turn holds while it is under way,
    beyond an untraced turn: runwire's tracing (the ``none`` variant: a delta's
    handling span under its record's context, the model call's span under it)
    and the SDK's own spans (``start_as_current_span``, as in :func:`sdk_floor`).

    What a backlog's collector walks for tracing (``docs/operations.md``);
    counted, not timed, so the machine's load does not move it.
    """
    header = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    provider = _provider("none")()
    tracer = provider.get_tracer("bench")
    parent = trace.set_span_in_context(
        NonRecordingSpan(SpanContext(1, 2, is_remote=True, trace_flags=TraceFlags(1)))
    )

    async def runwires(i: int, gate: asyncio.Event) -> None:
        with (
            tracing.handling(f"event-{i}", "orchestrator answer", {"runwire.run.id": f"r{i}"}),
            tracing.span("chat local", {"gen_ai.system": "local"}, client=True),
        ):
            await gate.wait()

    async def sdks(i: int, gate: asyncio.Event) -> None:
        with (
            tracer.start_as_current_span(
                "orchestrator answer",
                context=parent,
                kind=SpanKind.CONSUMER,
                attributes={"runwire.run.id": f"r{i}"},
            ),
            tracer.start_as_current_span(
                "chat local", kind=SpanKind.CLIENT, attributes={"gen_ai.system": "local"}
            ),
        ):
            await gate.wait()

    async def bare(i: int, gate: asyncio.Event) -> None:
        await gate.wait()

    async def held(turn: Callable[[int, asyncio.Event], Any]) -> int:
        gate = asyncio.Event()
        gc.collect()
        before = len(gc.get_objects())
        tasks = [asyncio.ensure_future(turn(i, gate)) for i in range(inflight)]
        await asyncio.sleep(0)  # every turn under way, waiting
        gc.collect()
        during = len(gc.get_objects())
        gate.set()
        await asyncio.gather(*tasks)
        del tasks
        return during - before

    active = Tracing(provider)
    for i in range(inflight):
        active.remember(f"event-{i}", header)
    tracing.enable(active)
    try:
        ours = await held(runwires)
    finally:
        tracing.disable()
    sdk = await held(sdks)
    untraced = await held(bare)
    provider.shutdown()
    return {
        "runwire_objects_per_turn": round((ours - untraced) / inflight, 1),
        "sdk_spans_objects_per_turn": round((sdk - untraced) / inflight, 1),
    }


def summarize(
    rates: dict[str, list[float]], unit: str, cpu: dict[str, list[float]], cpu_unit: str
) -> dict[str, Any]:
    off = statistics.median(rates["off"])
    off_cpu = statistics.median(cpu["off"])
    out: dict[str, Any] = {
        f"off_{unit}_median": round(off, 1),
        f"off_{cpu_unit}_median": round(off_cpu, 3),
    }
    for variant in VARIANTS:
        if variant == "off":
            continue
        on = statistics.median(rates[variant])
        on_cpu = statistics.median(cpu[variant])
        out[f"{variant}_{unit}_median"] = round(on, 1)
        out[f"{variant}_{cpu_unit}_median"] = round(on_cpu, 3)
        out[f"{variant}_throughput_overhead"] = round(1 - on / off, 3)
        out[f"{variant}_cpu_overhead"] = round(on_cpu / off_cpu - 1, 3)
    out["rounds"] = {k: [round(r, 1) for r in v] for k, v in rates.items()}
    out["cpu_rounds"] = {k: [round(r, 3) for r in v] for k, v in cpu.items()}
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=6_500)
    # A round's start-up (the group join, the first metadata) is spread over
    # its turns: fewer turns measure more of it than of tracing.
    parser.add_argument("--turns", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=7, help="orchestrator rounds (publish: 2x)")
    parser.add_argument("--latency-rounds", type=int, default=3, help="0: no latency rounds")
    parser.add_argument("--live-turns", type=int, default=1000, help="turns of a latency round")
    parser.add_argument("--rate", type=float, default=100.0, help="runs/s of a latency round")
    parser.add_argument(
        "--default-gc", action="store_true", help="CPython's collector settings, not a process's"
    )
    args = parser.parse_args()
    if not args.default_gc:
        gc_tuning.tune()  # as a runwire serve process starts, tracing off or on

    base = Settings()
    result: dict[str, Any] = {
        "sampling": "always_on (100%)",
        "cpus": os.cpu_count(),
        "load_average_before": round(os.getloadavg()[0], 2),
        "goal_overhead_below": GOAL,
        "gc": "default" if args.default_gc else f"tuned {gc_tuning.THRESHOLDS}, start-up frozen",
    }
    settings = base.model_copy(update={"topic_prefix": f"bench-{uuid.uuid4().hex[:8]}."})
    await provision_topics(settings)
    try:
        events = sample_events(max(1, args.events // 13))
        result["publish"] = await publish_rounds(settings, events, args.repeat * 2)
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
        await admin.start()
        with contextlib.suppress(Exception):
            await admin.delete_topics([settings.topic_for(spec.id) for spec in load_topics()])
        await admin.close()
    result["orchestrator"] = await orchestrator_rounds(base, args.turns, args.repeat)
    result["orchestrator"]["turns_per_round"] = args.turns
    # What tracing costs a turn beside what the SDK's two spans alone cost,
    # and what share of an untraced turn that floor already is.
    floor = await sdk_floor(args.turns, inflight=500)
    off_us = result["orchestrator"]["off_cpu_ms_per_turn_median"] * 1000
    for variant in ("none", "console"):
        on_us = result["orchestrator"][f"{variant}_cpu_ms_per_turn_median"] * 1000
        floor[f"{variant}_tracing_cpu_us_per_turn"] = round(on_us - off_us, 1)
        floor[f"{variant}_over_floor"] = round(
            (on_us - off_us) / floor["two_spans_cpu_us_per_turn"], 2
        )
    floor["floor_share_of_untraced_turn"] = round(floor["two_spans_cpu_us_per_turn"] / off_us, 3)
    result["orchestrator"]["sdk_floor"] = floor
    result["orchestrator"]["held_while_under_way"] = await held_objects(inflight=500)
    if args.latency_rounds:
        result["orchestrator_latency"] = await latency_rounds(
            base, args.live_turns, args.rate, args.latency_rounds
        )
        worst_p50 = max(
            result["orchestrator_latency"][f"{v}_p50_overhead"] for v in ("none", "console")
        )
        result["worst_latency_p50_overhead"] = worst_p50
        result["latency_within_goal"] = worst_p50 < GOAL
    result["load_average_after"] = round(os.getloadavg()[0], 2)
    for measure in ("cpu", "throughput"):
        worst = max(
            result[part][f"{v}_{measure}_overhead"]
            for part in ("publish", "orchestrator")
            for v in ("none", "console")
        )
        result[f"worst_{measure}_overhead"] = worst
        result[f"{measure}_within_goal"] = worst < GOAL
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tracing.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
