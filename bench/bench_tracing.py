"""The cost of tracing: publish and orchestrator throughput with tracing off and on, same run.

Tracing on means what ``OTEL_TRACES_EXPORTER`` gives a process, at 100%
sampling (the SDK's default sampler): every record written and read gets its
span with the W3C context in its headers, every handled delta, model call
and tool call its span.

- ``none``: spans made, sampled and ended, nothing exported
  (``OTEL_TRACES_EXPORTER=none``: the context still travels).
- ``console``: the console exporter behind the batch processor, writing to
  /dev/null (the exporter's serialization paid on its own thread).

Measured, off and the two ``on`` variants interleaved round after round so
that noise on a shared machine hits all alike:

- publish: ``Publisher.publish_many`` of the sample events, pipelined
  (:mod:`bench_publish`'s SDK side), events/s.
- orchestrator: a backlog of runs answered by the real orchestrator
  (:mod:`bench_orchestrator`'s throughput round), turns/s.

The overhead is ``1 - on/off`` of the medians; the goal is under 10%.

Run against a running stack (``runwire stack up``, or
``RUNWIRE_HOME=.runwire/test`` for the test stack):
    .venv/bin/python bench/bench_tracing.py [--events N] [--turns N] [--repeat K]
Writes bench/results/tracing.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from bench_codec import events as sample_events
from bench_orchestrator import serve_orchestrator, throughput
from bench_publish import CHUNK
from runwire.contract.events import Event
from runwire.infra.topics import load_topics, provision_topics
from runwire.log import Publisher
from runwire.settings import Settings
from runwire.telemetry import tracing
from runwire.telemetry.otel import Tracing

RESULTS = Path(__file__).parent / "results"
GOAL = 0.10


def _none() -> TracerProvider:
    return TracerProvider(shutdown_on_exit=False)


def _console() -> TracerProvider:
    provider = TracerProvider(shutdown_on_exit=False)
    sink = open(os.devnull, "w")  # noqa: SIM115 - closed with the provider's exporter
    provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(out=sink)))
    return provider


VARIANTS: dict[str, Callable[[], TracerProvider] | None] = {
    "off": None,
    "none": _none,
    "console": _console,
}


@contextlib.contextmanager
def traced(variant: str) -> Iterator[None]:
    make = VARIANTS[variant]
    if make is None:
        yield
        return
    provider = make()
    tracing.enable(Tracing(provider))
    try:
        yield
    finally:
        tracing.disable()
        provider.shutdown()


async def publish_rate(publisher: Publisher, events: list[Event]) -> float:
    started = time.perf_counter()
    for i in range(0, len(events), CHUNK):
        await publisher.publish_many(events[i : i + CHUNK])
    return len(events) / (time.perf_counter() - started)


async def publish_rounds(settings: Settings, events: list[Event], repeat: int) -> dict[str, Any]:
    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
    async with Publisher(settings) as publisher:
        await publish_rate(publisher, events)  # warm up
        for _ in range(repeat):
            for variant in VARIANTS:
                with traced(variant):
                    rates[variant].append(await publish_rate(publisher, events))
    return summarize(rates, "events_per_s")


async def orchestrator_rounds(base: Settings, turns: int, repeat: int) -> dict[str, Any]:
    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(repeat):
        for variant in VARIANTS:
            with traced(variant):
                result = await throughput(base, serve_orchestrator, turns)
            rates[variant].append(result["turns_per_s"])
    return summarize(rates, "turns_per_s")


def summarize(rates: dict[str, list[float]], unit: str) -> dict[str, Any]:
    off = statistics.median(rates["off"])
    out: dict[str, Any] = {f"off_{unit}_median": round(off, 1)}
    for variant in VARIANTS:
        if variant == "off":
            continue
        on = statistics.median(rates[variant])
        out[f"{variant}_{unit}_median"] = round(on, 1)
        out[f"{variant}_overhead"] = round(1 - on / off, 3)
    out["rounds"] = {k: [round(r, 1) for r in v] for k, v in rates.items()}
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=6_500)
    parser.add_argument("--turns", type=int, default=1500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    base = Settings()
    result: dict[str, Any] = {
        "sampling": "always_on (100%)",
        "cpus": os.cpu_count(),
        "load_average_before": round(os.getloadavg()[0], 2),
        "goal_overhead_below": GOAL,
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
    result["load_average_after"] = round(os.getloadavg()[0], 2)
    worst = max(
        result[part][f"{v}_overhead"]
        for part in ("publish", "orchestrator")
        for v in ("none", "console")
    )
    result["worst_overhead"] = worst
    result["within_goal"] = worst < GOAL
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tracing.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
