"""``RunwireSession`` beside the Agents SDK's own sessions, in one run.

For one session of ``--items`` items (user / assistant messages as the Runner
stores them: assistant ones as ``output_text`` message items), in each of:

- ``runwire``: ``RunwireSession`` (its shared ``LogBackend``, on the sessions
  loop): ``add_items`` returns once the items are durable in Kafka
  (acks=all) *and* the transcript cache has applied them (read-your-writes);
  ``get_items`` reads the visible runs and their stored item state from Redis.
- ``agents_sqlite``: ``SQLiteSession`` on a file (an INSERT committed; a
  SELECT).
- ``agents_redis``: ``RedisSession`` on the stack's Redis (RPUSH + metadata;
  LRANGE).
- ``agents_sqlalchemy``: ``SQLAlchemySession`` on the stack's Postgres (the
  same server runwire's read models use; psycopg 3, async).

Measured: ``add`` (one item per call, the session growing to ``--items``),
``get`` (``get_items()``, all of them) and ``get_last`` (``get_items(limit=2)``).
The adds run one session after the other; the reads take turns (one of each
per round, the order rotating, a quarter of the rounds untimed first), so the
load of a shared machine falls on all alike and the ratios hold.

Runs on fresh topics / schema / Redis keys of the stack Settings() points at
(``runwire stack up``, or ``RUNWIRE_HOME=.runwire/test`` for the test stack),
with the projectors running in this process:
    .venv/bin/python bench/bench_agents_session.py [--items 200] [--reads 200]
Writes bench/results/agents_session.json.
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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from peers import redis_session as peer_redis_session
from peers import sqlalchemy_session, sqlite_session
from runwire.infra.isolation import isolated_deployment
from runwire.projections.runtime.lag import projection_lag
from runwire.projections.runtime.protocol import Projection
from runwire.sessions.embedded import projectors_running
from runwire.sessions.openai_agents import RunwireSession, close_shared_backends
from runwire.settings import Settings

RESULTS = Path(__file__).parent / "results"
NOTE = (
    "add: runwire returns once the item is durable in Kafka (acks=all, replicated) and the "
    "transcript cache (and, for a turn's first item, the run-status store) has applied it, "
    "so every process reads it next; the SDK sessions commit to one local store. "
    "get: one script call lists the visible runs (ids, clear point), one pipelined read "
    "fetches their item state, parsed without models; no Postgres on the read path. "
    "get_last (limit=2): only the newest runs are read. Reads are interleaved in one run."
)
SESSIONS = ("runwire", "agents_sqlite", "agents_redis", "agents_sqlalchemy")
WARMUP_SHARE = 4


def stats(samples: list[float]) -> dict[str, float]:
    """p50 / p99 / mean in milliseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(p99 * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
        "n": len(ordered),
    }


def item(i: int) -> dict[str, Any]:
    """The ``i``-th item, as the Runner stores it."""
    words = f"item {i}: " + "lorem ipsum dolor " * 6
    if i % 2 == 0:
        return {"role": "user", "content": words}
    return {
        "id": f"msg_{i}",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": words, "annotations": [], "logprobs": []}],
    }


async def add_all(session: Any, items: int) -> list[float]:
    out: list[float] = []
    for i in range(items):
        start = time.perf_counter()
        await session.add_items([item(i)])
        out.append(time.perf_counter() - start)
    return out


Read = Callable[[], Awaitable[Any]]


async def interleaved(reads: dict[str, Read], times: int) -> dict[str, list[float]]:
    names = list(reads)

    async def once(name: str) -> float:
        start = time.perf_counter()
        await reads[name]()
        return time.perf_counter() - start

    for _ in range(times // WARMUP_SHARE):
        for name in names:
            await once(name)
    out: dict[str, list[float]] = {name: [] for name in names}
    for i in range(times):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            out[name].append(await once(name))
    return out


def last_two(session: Any) -> Read:
    async def read() -> Any:
        return await session.get_items(limit=2)

    return read


async def settled(projections: dict[str, Projection], settings: Settings) -> None:
    """Wait until every projector has read to the log end, so reads are timed alone."""
    for projection in projections.values():
        while (await projection_lag(projection, settings)).lag:  # noqa: ASYNC110 - polling a server
            await asyncio.sleep(0.1)


def ratio(ours: float, theirs: float) -> float:
    return round(ours / theirs, 2) if theirs else float("inf")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--reads", type=int, default=200)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    n = args.items
    base = Settings()
    async with contextlib.AsyncExitStack() as stack:
        settings = await stack.enter_async_context(isolated_deployment(base, "bench"))
        projections = await stack.enter_async_context(projectors_running(settings))
        stack.push_async_callback(asyncio.to_thread, close_shared_backends)
        ours = RunwireSession(user_id="bench", settings=settings)
        stack.push_async_callback(ours.close)
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        sqlite = sqlite_session(stack, Path(tmp))
        redis_session = await peer_redis_session(stack, settings)
        alchemy = await sqlalchemy_session(stack, settings)
        sessions: dict[str, Any] = {
            "runwire": ours,
            "agents_sqlite": sqlite,
            "agents_redis": redis_session,
            "agents_sqlalchemy": alchemy,
        }
        adds = {name: await add_all(session, n) for name, session in sessions.items()}
        await settled(projections, settings)
        expected = [item(i) for i in range(n)]
        for name, session in sessions.items():
            assert await session.get_items() == expected, f"{name} gives its items back"
        reads: dict[str, Read] = {}
        for name, session in sessions.items():
            reads[f"{name}.get"] = session.get_items
            reads[f"{name}.get_last"] = last_two(session)
        timed = await interleaved(reads, args.reads)
    result: dict[str, Any] = {
        "items": n,
        "reads": args.reads,
        "cpus": os.cpu_count(),
        "load_average_1m_at_start": round(load_before, 2),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    for name in SESSIONS:
        result[name] = {
            "add": stats(adds[name]),
            "get": stats(timed[f"{name}.get"]),
            "get_last": stats(timed[f"{name}.get_last"]),
        }
    result["note"] = NOTE
    result["ratios_runwire_over"] = {
        other: {
            op: ratio(result["runwire"][op]["p50_ms"], result[other][op]["p50_ms"])
            for op in ("add", "get", "get_last")
        }
        | {
            f"{op}_p99": ratio(result["runwire"][op]["p99_ms"], result[other][op]["p99_ms"])
            for op in ("add", "get", "get_last")
        }
        for other in SESSIONS[1:]
    }
    print(f"{'':20}{'add p50':>10}{'add p99':>10}{'get p50':>10}{'get p99':>10}{'last p50':>10}")
    for name in SESSIONS:
        r = result[name]
        print(
            f"{name:20}{r['add']['p50_ms']:>10.3f}{r['add']['p99_ms']:>10.3f}"
            f"{r['get']['p50_ms']:>10.3f}{r['get']['p99_ms']:>10.3f}"
            f"{r['get_last']['p50_ms']:>10.3f}"
        )
    print("ratios (runwire p50 / theirs):", json.dumps(result["ratios_runwire_over"]))
    print(
        f"load average {result['load_average_1m_at_start']} at start, "
        f"{result['load_average_1m']} at the end, on {result['cpus']} cpus"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "agents_session.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
