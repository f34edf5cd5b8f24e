"""The cost of sealing: publish and rebuild throughput, add_message / get_messages
latency, with sealing off and on, same run.

Two deployments on the same stack (own topics, schema, Redis keys), one with
``sealing`` off, one with it on (a key file in a temporary directory, the
default key cache of 60 s), measured round after round, alternating, so that
noise on a shared machine hits both alike:

- publish: ``Publisher.publish_many`` of :mod:`bench_codec`'s sample events
  (every one of a session, so every one sealed), pipelined, events/s. The
  sessions' keys are made in the warm-up (a new session's first write pays
  one key-store round trip, measured apart as ``first_seal_ms``).
- rebuild: the run-status projection rebuilt from offset zero of everything
  published so far (decode, open the seal, apply), records/s.
- add: the latency of ``AsyncSession.add_message`` (durable and applied).
- get: the latency of ``get_messages()`` (warm) on a session of ``--messages``.

Overheads of the medians: throughput ``1 - on/off``, latency ``on/off - 1``.
The goal is under 15%. ``codec_cpu``: encode and decode alone, events per
CPU second (best of 5), the steady figure on a loaded machine.

Run against a running stack (``runwire stack up``, or
``RUNWIRE_HOME=.runwire/test`` for the test stack):
    .venv/bin/python bench/bench_sealing.py [--events N] [--messages N] [--repeat K]
Writes bench/results/sealing.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench_codec import best_rate
from bench_codec import events as sample_events
from bench_publish import CHUNK
from runwire.contract.events import Event
from runwire.infra.isolation import isolated_deployment
from runwire.log import Publisher
from runwire.projections.runtime.protocol import Projection, Rebuildable
from runwire.projections.runtime.rebuild import rebuild
from runwire.sessions import AsyncSession
from runwire.sessions.embedded import projectors_running
from runwire.sessions.log_backend import LogBackend
from runwire.settings import Settings

RESULTS = Path(__file__).parent / "results"
GOAL = 0.15
VARIANTS = ("off", "on")


@contextlib.asynccontextmanager
async def deployment(base: Settings, variant: str, keys: Path) -> AsyncIterator[Settings]:
    async with isolated_deployment(base, "bseal") as mine:
        if variant == "on":
            mine = mine.model_copy(update={"sealing": True, "sealing_key_file": keys})
        yield mine


async def publish_rate(settings: Settings, events: list[Event]) -> float:
    async with Publisher(settings) as publisher:
        started = time.perf_counter()
        for i in range(0, len(events), CHUNK):
            await publisher.publish_many(events[i : i + CHUNK])
        return len(events) / (time.perf_counter() - started)


async def first_seal_ms(settings: Settings, sessions: int) -> float:
    """Median milliseconds of sealing the first event of a new session (its key made)."""
    from runwire.contract.codec import codec_for

    codec = codec_for(settings)
    base = sample_events(1)[0]
    took = []
    for i in range(sessions):
        event = base.model_copy(update={"session_id": f"first-seal-{i}-{time.time_ns()}"})
        started = time.perf_counter()
        await asyncio.to_thread(codec.encode, event)
        took.append(time.perf_counter() - started)
    return statistics.median(took) * 1e3


def codec_rates(settings: Settings, events: list[Event]) -> dict[str, float]:
    """Encode and decode events per CPU second (best of 5): the steady measure of the
    seal's own work, which a shared machine's load does not move (keys cached)."""
    from runwire.contract.codec import codec_for

    codec = codec_for(settings)
    data = [codec.encode(e) for e in events]
    return {
        "encode_per_cpu_s": best_rate(lambda: len([codec.encode(e) for e in events]), 5),
        "decode_per_cpu_s": best_rate(lambda: len([codec.decode(d) for d in data]), 5),
    }


async def rebuild_rate(projection: Projection, settings: Settings) -> float:
    assert isinstance(projection, Rebuildable)
    report = await rebuild(projection, settings)
    return report.rate


async def session_latencies(backend: LogBackend, messages: int) -> tuple[float, float]:
    """Median add_message and get_messages milliseconds over one session."""
    adds: list[float] = []
    gets: list[float] = []
    async with AsyncSession(user_id="bench", backend=backend) as s:
        for i in range(messages):
            started = time.perf_counter()
            await s.add_message("user" if i % 2 == 0 else "assistant", f"message {i} " * 20)
            adds.append(time.perf_counter() - started)
        for _ in range(messages):
            started = time.perf_counter()
            await s.get_messages()
            gets.append(time.perf_counter() - started)
    return statistics.median(adds) * 1e3, statistics.median(gets) * 1e3


def summarize(samples: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for measure, higher_is_better in (
        ("publish_events_per_s", True),
        ("rebuild_records_per_s", True),
        ("add_message_ms", False),
        ("get_messages_ms", False),
    ):
        off = statistics.median(samples["off"][measure])
        on = statistics.median(samples["on"][measure])
        overhead = 1 - on / off if higher_is_better else on / off - 1
        out[measure] = {
            "off_median": round(off, 3),
            "on_median": round(on, 3),
            "overhead": round(overhead, 3),
            "within_goal": overhead < GOAL,
            "rounds": {v: [round(x, 3) for x in samples[v][measure]] for v in VARIANTS},
        }
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=6_500)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    base = Settings()
    events = sample_events(max(1, args.events // 13))
    samples: dict[str, dict[str, list[float]]] = {v: {} for v in VARIANTS}
    result: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "load_average_before": round(os.getloadavg()[0], 2),
        "events_per_round": len(events),
        "messages_per_session": args.messages,
        "goal_overhead_below": GOAL,
    }
    with tempfile.TemporaryDirectory() as tmp:
        async with contextlib.AsyncExitStack() as stack:
            settings = {
                v: await stack.enter_async_context(
                    deployment(base, v, Path(tmp) / "sealing-keys.json")
                )
                for v in VARIANTS
            }
            projections = {
                v: await stack.enter_async_context(projectors_running(settings[v]))
                for v in VARIANTS
            }
            backends = {
                v: await stack.enter_async_context(LogBackend(settings[v])) for v in VARIANTS
            }
            for v in VARIANTS:  # warm up: connections, schemas, every session's key made
                await publish_rate(settings[v], events)
                await session_latencies(backends[v], 4)
            for r in range(args.repeat):
                order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]
                for v in order:
                    got = samples[v]
                    got.setdefault("publish_events_per_s", []).append(
                        await publish_rate(settings[v], events)
                    )
                    got.setdefault("rebuild_records_per_s", []).append(
                        await rebuild_rate(projections[v]["runs"], settings[v])
                    )
                    add_ms, get_ms = await session_latencies(backends[v], args.messages)
                    got.setdefault("add_message_ms", []).append(add_ms)
                    got.setdefault("get_messages_ms", []).append(get_ms)
            result["first_seal_ms"] = round(await first_seal_ms(settings["on"], 50), 3)
            rates = {v: codec_rates(settings[v], events) for v in VARIANTS}
            result["codec_cpu"] = {
                measure: {
                    "off": round(rates["off"][measure]),
                    "on": round(rates["on"][measure]),
                    "overhead": round(1 - rates["on"][measure] / rates["off"][measure], 3),
                }
                for measure in rates["off"]
            }
    result.update(summarize(samples))
    result["load_average_after"] = round(os.getloadavg()[0], 2)
    worst = max(result[m]["overhead"] for m in summarize(samples))
    result["worst_overhead"] = worst
    result["within_goal"] = worst < GOAL
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sealing.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
