"""add_message, where its time goes, beside the raw limits and the peers, same run.

``add_message`` returns once the event is durable in Kafka (acks=all) and this
backend's ``get_messages`` shows it (see ``runwire.sessions.own_writes``).
The four projectors run as ``runwire serve`` processes, as a deployment runs
them, so each write also wakes them on the same cores.

- Contenders, each adding user / assistant messages alternately (half the
  adds open a run, half append to one under its claim):
  runwire's ``AsyncSession.add_message``, the Agents SDK's
  ``SQLAlchemySession`` on the same Postgres (the durable, server-backed
  peer), ``RedisSession`` on the same Redis and ``SQLiteSession`` (``add_items``
  of one item).
- Raw limits: aiokafka ``send_and_wait`` with the Publisher's producer
  options to a topic of its own (``raw_kafka_send_and_wait``) and, of the
  records runwire writes (run events of other runs), to the run-events
  topic the projectors read (``raw_kafka_send_and_wait_run_events``: each
  write then also wakes them, as every add does); a Redis ``PING``; a
  Postgres ``SELECT 1``.
- Two paces: ``back_to_back`` (the next add as soon as one returns: the
  machine's cores are shared by the writer, the broker, four projectors,
  Postgres and Redis, so this is a throughput bound) and ``paced`` (one add
  every ``--pace-ms``, what a chat UI or an agent loop does: latency).
- Stages of runwire's add (p50 of each call): ``read_cache``, the one read
  of the transcript cache a write plans on (tail, clear point, deleted,
  ended); ``read_index`` / ``read_tail`` only when the caller's ownership is
  not known yet (a backend's first write of a session); ``claim`` (appends
  only); ``publish`` to the broker's ack.
- Rounds of ``--block`` adds take turns between the contenders, so a busy
  moment of a shared machine hits them all alike.

    .venv/bin/python bench/bench_add_message.py [--messages 400] [--pace-ms 20]
Writes bench/results/add_message.json (with the load averages).
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
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from tests.support.workload import synthetic_events

import runwire.sessions.log_backend as log_backend
from peers import redis_session, sqlalchemy_session, sqlite_session
from runwire.infra.isolation import isolated_deployment
from runwire.log.clients import producer_options
from runwire.sessions import AsyncSession
from runwire.sessions.log_backend import LogBackend
from runwire.settings import Settings
from served import projectors

RESULTS = Path(__file__).parent / "results"
Add = Callable[[int], Awaitable[Any]]


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
        "n": len(ordered),
    }


def text(i: int) -> tuple[str, str]:
    return ("user" if i % 2 == 0 else "assistant"), f"message {i}: " + "lorem ipsum dolor " * 6


class Stages:
    """Wraps the backend's steps to time each call (a probe; nothing changes)."""

    def __init__(self, backend: LogBackend) -> None:
        self.samples: dict[str, list[float]] = {}
        self.on = False
        backend.write_point = self._timed("read_cache", backend.write_point)  # type: ignore[method-assign,assignment]
        backend.tail = self._timed("read_tail", backend.tail)  # type: ignore[method-assign,assignment]
        backend.describe = self._timed("read_index", backend.describe)  # type: ignore[method-assign,assignment]
        claims = backend._ready_claims()
        claims.take = self._timed("claim", claims.take)  # type: ignore[method-assign,assignment]
        log_backend.publish_retrying = self._timed("publish", log_backend.publish_retrying)  # type: ignore[attr-defined,assignment]

    def _timed(self, name: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                if self.on:
                    self.samples.setdefault(name, []).append(time.perf_counter() - start)

        return timed


async def rounds(
    adds: dict[str, Add], messages: int, block: int, pace: float
) -> dict[str, list[float]]:
    """``messages`` adds per contender, ``block`` at a time in turns; each add's latency."""
    out: dict[str, list[float]] = {name: [] for name in adds}
    done = dict.fromkeys(adds, 0)
    loop = asyncio.get_running_loop()
    while any(n < messages for n in done.values()):
        for name, add in adds.items():
            for _ in range(min(block, messages - done[name])):
                due = loop.time() + pace
                start = time.perf_counter()
                await add(done[name])
                out[name].append(time.perf_counter() - start)
                done[name] += 1
                if pace:
                    await asyncio.sleep(max(0.0, due - loop.time()))
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--block", type=int, default=20)
    parser.add_argument("--pace-ms", type=float, default=20.0)
    args = parser.parse_args()
    load_at_start = os.getloadavg()
    results: dict[str, Any] = {
        "messages": args.messages,
        "pace_ms": args.pace_ms,
        "cpus": os.cpu_count(),
    }
    async with contextlib.AsyncExitStack() as stack:
        settings = await stack.enter_async_context(isolated_deployment(Settings(), "bench"))
        await stack.enter_async_context(projectors(settings, "processes"))
        backend = await stack.enter_async_context(LogBackend(settings))
        stages = Stages(backend)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        alchemy = await sqlalchemy_session(stack, settings)
        theirs = await redis_session(stack, settings)
        sqlite = sqlite_session(stack, tmp)

        topic = f"{settings.topic_prefix}raw-{uuid.uuid4().hex[:8]}"
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
        await admin.start()
        stack.push_async_callback(admin.close)
        await admin.create_topics([NewTopic(topic, 1, 1)])
        raw = AIOKafkaProducer(**producer_options(settings))
        await raw.start()
        stack.push_async_callback(raw.stop)
        # Valid run events of runs of their own, in order: the projectors apply them.
        run_records = iter(
            backend.publisher.record_for(event)
            for event in synthetic_events(
                runs=args.messages, sessions=10, events=3 * args.messages + 100
            ).events
            if event.run_id is not None
        )

        async def raw_run_events(_: int) -> None:
            record = next(run_records)
            await raw.send_and_wait(
                record.topic, record.value, key=record.key, headers=list(record.headers)
            )

        redis_client = aioredis.Redis.from_url(settings.redis_url)
        stack.push_async_callback(redis_client.aclose)
        pg = await psycopg.AsyncConnection.connect(settings.postgres_dsn, autocommit=True)
        stack.push_async_callback(pg.close)

        async def pg_select(_: int) -> None:
            await (await pg.execute("SELECT 1")).fetchone()

        async def sdk(session: Any) -> Add:
            async def add(i: int) -> None:
                role, body = text(i)
                await session.add_items([{"role": role, "content": body}])

            return add

        payload = json.dumps({"role": "user", "content": text(0)[1]}).encode()
        adds: dict[str, dict[str, Add]] = {}
        for pace_name in ("back_to_back", "paced"):
            session = await stack.enter_async_context(
                AsyncSession(user_id="bench", backend=backend)
            )

            async def ours(i: int, session: AsyncSession = session) -> None:
                await session.add_message(*text(i))

            adds[pace_name] = {
                "runwire": ours,
                "agents_sqlalchemy": await sdk(alchemy),
                "agents_redis": await sdk(theirs),
                "agents_sqlite": await sdk(sqlite),
                "raw_kafka_send_and_wait": lambda i: raw.send_and_wait(topic, payload, key=b"k"),
                "raw_kafka_send_and_wait_run_events": raw_run_events,
                "raw_redis_ping": lambda i: redis_client.ping(),
                "raw_postgres_select": pg_select,
            }
        # Warm-up: connections, prepared statements, the first run of each session.
        for add in adds["back_to_back"].values():
            for i in range(10):
                await add(i)
        for pace_name, pace in (("back_to_back", 0.0), ("paced", args.pace_ms / 1000)):
            stages.samples.clear()
            stages.on = True
            times = await rounds(adds[pace_name], args.messages, args.block, pace)
            stages.on = False
            results[pace_name] = {name: stats(v) for name, v in times.items()}
            results[pace_name]["runwire_stages"] = {n: stats(v) for n, v in stages.samples.items()}
            ours_p50 = results[pace_name]["runwire"]["p50_ms"]
            results[pace_name]["ratios"] = {
                "runwire_over_sqlalchemy_p50": round(
                    ours_p50 / results[pace_name]["agents_sqlalchemy"]["p50_ms"], 2
                ),
                "runwire_over_raw_kafka_p50": round(
                    ours_p50 / results[pace_name]["raw_kafka_send_and_wait"]["p50_ms"], 2
                ),
                "runwire_over_raw_kafka_run_events_p50": round(
                    ours_p50 / results[pace_name]["raw_kafka_send_and_wait_run_events"]["p50_ms"],
                    2,
                ),
            }
            results[pace_name]["goal"] = {
                "p50_le_3ms": ours_p50 <= 3.0,
                "p99_le_10ms": results[pace_name]["runwire"]["p99_ms"] <= 10.0,
                "p50_no_slower_than_sqlalchemy": ours_p50
                <= results[pace_name]["agents_sqlalchemy"]["p50_ms"],
            }
    results["load_average_at_start"] = load_at_start
    results["load_average_at_end"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "add_message.json").write_text(json.dumps(results, indent=2) + "\n")
    for pace_name in ("back_to_back", "paced"):
        print(
            f"\n{pace_name}{'' if pace_name == 'back_to_back' else f' (one add every {args.pace_ms:g} ms)'}"
        )
        print(f"{'':36}{'p50 ms':>10}{'p99 ms':>10}")
        for name, s in results[pace_name].items():
            if name in ("runwire_stages", "ratios", "goal"):
                continue
            print(f"{name:36}{s['p50_ms']:>10.3f}{s['p99_ms']:>10.3f}")
        print(
            "  runwire's stages (p50 / p99 ms):",
            ", ".join(
                f"{n} {s['p50_ms']:.2f} / {s['p99_ms']:.2f}"
                for n, s in results[pace_name]["runwire_stages"].items()
            ),
        )
        print("  ratios:", results[pace_name]["ratios"], "goal:", results[pace_name]["goal"])
    print(f"\nload average at start {load_at_start}, at end {results['load_average_at_end']}")


if __name__ == "__main__":
    asyncio.run(main())
