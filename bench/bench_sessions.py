"""Session latency side by side: runwire vs the OpenAI Agents SDK's sessions, same run.

For a session of ``--messages`` messages (user / assistant turns, one at a time):

- ``add``: the latency of adding one message. runwire: ``add_message`` returns
  once the event is durable in Kafka (acks=all), and this backend's next
  ``get_messages`` shows it (a new run at once, an append under the run's
  claim; other processes once the projections have it). SQLiteSession: an
  INSERT committed to a WAL file. RedisSession: an RPUSH (+ metadata) to the
  same local Redis. SQLAlchemySession: INSERTs committed to the same
  Postgres runwire's read models use (the durable, server-backed peer).
- ``--projectors processes`` (the default) runs the four projectors as
  ``runwire serve`` processes, as a deployment does; ``inline`` runs them on
  this process's loop, where their work competes with the timed calls.
- ``get`` (warm, the session unchanged since this process last read it):
  ``get_messages()``: one script call to Redis, which sees the session's
  version is the one held and sends back only a small header (version, clear
  point, deleted); the held messages are served (fresh lists). No Postgres
  on the read path (the owner was checked at open).
- ``get_after_change``: ``get_messages()`` right after another writer (its
  own backend, as another process would) added a message to the session: the
  script sends every visible run's stored messages; only the changed run is
  decoded again. Ten such sessions take turns, each starting
  ``--messages`` - 19 long, so over the run they average ``--messages``.
- ``get_cold``: ``get_messages()`` on a backend with its caches off
  (``decoded_bytes=0``): nothing held, every run transferred and decoded on
  every read - what a process that never read the session pays.
- the SDK sessions' ``get_items()`` return their stored JSON items (RedisSession:
  LRANGE of the whole list; SQLiteSession: a SELECT), with no caching.
- ``session_script_call``: the one Redis call alone (``SessionReader.read``,
  no version held: runs and stored messages, not decoded).
- ``get last turn``: ``get_messages(limit=1)`` / ``get_items(limit=2)``.
- All the sessions are written first, then their reads are timed taking
  turns (one of each per round, the order rotating), so the load of a
  shared machine falls on all of them alike and the ratios hold. A read's
  preparation (the other writer's add) is not timed.
- memory: sequential ``store_memory`` (each durable and applied before the
  next) and ``get_memory`` rates, and concurrent puts.
- ``runwire_agents_adapter``: the same through ``RunwireSession`` (the Agents
  SDK's protocol on runwire: items in and out), what an SDK user swaps in.

Runs on fresh topics / schema / Redis keys of the stack Settings() points at
(``runwire stack up``, or ``RUNWIRE_HOME=.runwire/test`` for the test stack),
with the projectors running in this process:
    .venv/bin/python bench/bench_sessions.py [--messages 200] [--reads 200]
Writes bench/results/sessions.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from peers import redis_session, sqlalchemy_session, sqlite_session
from runwire.infra.isolation import isolated_deployment
from runwire.projections.runtime.lag import projection_lag
from runwire.projections.runtime.protocol import Projection
from runwire.projections.transcripts.session_read import SessionReader
from runwire.sessions import AsyncSession
from runwire.sessions.log_backend import LogBackend
from runwire.sessions.openai_agents import RunwireSession
from runwire.settings import Settings
from served import projectors

RESULTS = Path(__file__).parent / "results"


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


def turn_texts(n: int) -> list[tuple[str, str]]:
    return [
        ("user" if i % 2 == 0 else "assistant", f"message {i}: " + "lorem ipsum dolor " * 6)
        for i in range(n)
    ]


async def settled(projections: dict[str, Projection], settings: Settings) -> None:
    """Wait until every projector has read to the log end, so reads are timed alone."""
    for projection in projections.values():
        while (await projection_lag(projection, settings)).lag:  # noqa: ASYNC110 - polling a server
            await asyncio.sleep(0.1)


async def add_all(add: Callable[[str, str], Awaitable[Any]], messages: int) -> list[float]:
    """Add the session's messages one at a time; each one's latency."""
    out: list[float] = []
    for role, text in turn_texts(messages):
        start = time.perf_counter()
        await add(role, text)
        out.append(time.perf_counter() - start)
    return out


def sdk_add(session: Any) -> Callable[[str, str], Awaitable[Any]]:
    """An Agents SDK session's way to add one message, as ``add_message``."""

    async def add(role: str, text: str) -> None:
        await session.add_items([{"role": role, "content": text}])

    return add


Read = Callable[[], Awaitable[Any]]


async def interleaved(
    reads: dict[str, Read | tuple[Read, Read]], times: int
) -> dict[str, list[float]]:
    """Time every read ``times`` times, taking turns (one of each per round, the
    order rotating), so a busy moment of a shared machine hits them all alike;
    ``times // 4`` untimed rounds first (connections, prepared statements).
    A ``(prepare, read)`` pair runs ``prepare`` untimed right before each read."""
    names = list(reads)

    async def once(name: str) -> float:
        entry = reads[name]
        if isinstance(entry, tuple):
            prepare, read = entry
            await prepare()
        else:
            read = entry
        start = time.perf_counter()
        await read()
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


WARMUP_SHARE = 4
CHANGED_SESSIONS = 10


class ChangedByAnother:
    """Sessions another writer adds one message to before each timed read, in
    turns; each starts short by half its growth over the run, so the reads
    see ``messages`` on average."""

    def __init__(self, reader: LogBackend, writer: LogBackend, messages: int, reads: int) -> None:
        self.reader, self.writer = reader, writer
        rounds = reads + reads // WARMUP_SHARE
        self.start = max(2, messages - rounds // CHANGED_SESSIONS // 2)
        self.readers: list[AsyncSession] = []
        self.writers: list[AsyncSession] = []
        self.turn = 0
        self.added = [0] * CHANGED_SESSIONS
        self.sizes: list[int] = []

    async def write(self, stack: contextlib.AsyncExitStack) -> None:
        """Write the sessions and open them on both sides (opening reads the
        session index: done here, not in the timed reads)."""
        for _ in range(CHANGED_SESSIONS):
            w = AsyncSession(user_id="bench-changed", backend=self.writer)
            await stack.enter_async_context(w)
            for role, text in turn_texts(self.start):
                await w.add_message(role, text)
            self.writers.append(w)
        for w in self.writers:
            r = AsyncSession(w.session_id, user_id="bench-changed", backend=self.reader)
            await stack.enter_async_context(r)
            assert len(await r.get_messages()) == self.start  # held, as after any read
            self.readers.append(r)

    async def prepare(self) -> None:
        self.turn += 1
        at = self.turn % len(self.writers)
        self.added[at] += 1
        # Roles alternate, as in turn_texts: a message of the same role as the
        # last one would be merged into it (same count, one run changed).
        role = "user" if (self.start + self.added[at]) % 2 == 1 else "assistant"
        await self.writers[at].add_message(role, f"changed {self.turn}: " + "lorem ipsum " * 9)

    async def read(self) -> None:
        r = self.readers[self.turn % len(self.readers)]
        self.sizes.append(len(await r.get_messages()))


async def bench_memory(backend: LogBackend, count: int) -> dict[str, Any]:
    async with AsyncSession(user_id="bench-memory", backend=backend) as s:
        start = time.perf_counter()
        for i in range(count):
            await s.store_memory(f"fact.{i}", {"value": i}, scope="user")
        put_rate = count / (time.perf_counter() - start)
        start = time.perf_counter()
        await asyncio.gather(*(s.store_memory(f"burst.{i}", i, scope="user") for i in range(count)))
        concurrent_put_rate = count / (time.perf_counter() - start)
        start = time.perf_counter()
        for i in range(count * 5):
            assert await s.get_memory(f"fact.{i % count}", scope="user") == {"value": i % count}
        get_rate = count * 5 / (time.perf_counter() - start)
    return {
        "put_per_s": round(put_rate, 1),
        "concurrent_put_per_s": round(concurrent_put_rate, 1),
        "get_per_s": round(get_rate, 1),
    }


def machine_uptime() -> str:
    """``uptime``'s line (load averages over 1, 5 and 15 minutes); before and after only."""
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else float("inf")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--memory", type=int, default=200)
    parser.add_argument(
        "--projectors",
        choices=("processes", "inline"),
        default="processes",
        help="the projectors as `runwire serve` processes (a deployment) or on this loop",
    )
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    uptime_before = machine_uptime()
    base = Settings()
    n = args.messages
    async with contextlib.AsyncExitStack() as stack:
        settings = await stack.enter_async_context(isolated_deployment(base, "bench"))
        projections = await stack.enter_async_context(projectors(settings, args.projectors))
        backend = await stack.enter_async_context(LogBackend(settings))
        # Caches off: nothing held or kept between reads (every run transferred
        # and its messages validated on every read).
        cold = await stack.enter_async_context(LogBackend(settings, decoded_bytes=0))
        # Another writer, as another process: its own connections and caches.
        other = await stack.enter_async_context(LogBackend(settings))
        ours = await stack.enter_async_context(AsyncSession(user_id="bench", backend=backend))
        adapter = RunwireSession(user_id="bench-adapter", backend=backend)
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        sqlite = sqlite_session(stack, Path(tmp))
        theirs = await redis_session(stack, settings)
        client = aioredis.Redis.from_url(settings.redis_url)
        stack.push_async_callback(client.aclose)
        reader = SessionReader(client, settings.redis_key_prefix)
        alchemy = await sqlalchemy_session(stack, settings)

        adds = {
            "runwire": await add_all(ours.add_message, n),
            "runwire_agents_adapter": await add_all(sdk_add(adapter), n),
            "agents_sqlite": await add_all(sdk_add(sqlite), n),
            "agents_redis": await add_all(sdk_add(theirs), n),
            "agents_sqlalchemy": await add_all(sdk_add(alchemy), n),
        }
        changed = ChangedByAnother(backend, other, n, args.reads)
        await changed.write(stack)
        await settled(projections, settings)
        sid = ours.session_id
        ours_cold = await stack.enter_async_context(
            AsyncSession(sid, user_id="bench", backend=cold)
        )
        assert len(await ours.get_messages()) == n
        assert await ours_cold.get_messages() == await ours.get_messages()
        assert len(await adapter.get_items()) == len(await sqlite.get_items()) == n
        assert len(await theirs.get_items()) == n
        samples = await interleaved(
            {
                "runwire.get": ours.get_messages,
                "runwire.get_after_change": (changed.prepare, changed.read),
                "runwire.get_cold": ours_cold.get_messages,
                "runwire.get_last_turn": lambda: ours.get_messages(limit=1),
                "runwire.session_script_call": lambda: reader.read(sid),
                "runwire_agents_adapter.get": adapter.get_items,
                "runwire_agents_adapter.get_last_turn": lambda: adapter.get_items(limit=2),
                "agents_sqlite.get": sqlite.get_items,
                "agents_sqlite.get_last_turn": lambda: sqlite.get_items(limit=2),
                "agents_redis.get": theirs.get_items,
                "agents_redis.get_last_turn": lambda: theirs.get_items(limit=2),
            },
            args.reads,
        )
        timed_sizes = changed.sizes[-args.reads :]
        changed_sizes = {
            "min": min(timed_sizes),
            "mean": round(statistics.fmean(timed_sizes), 1),
            "max": max(timed_sizes),
        }
        # The warm read's reply: the header only (bytes of strings in it).
        await ours.get_messages()
        warm_reply_bytes = backend.view.last_reply_bytes
        await reader.read(sid)
        whole_reply_bytes = reader.last_reply_bytes
        memory = await bench_memory(backend, args.memory)
    uptime = {
        "at_start": uptime_before,
        "at_end": machine_uptime(),
    }
    results: dict[str, dict[str, Any]] = {name: {"add": stats(a)} for name, a in adds.items()}
    for key, taken in samples.items():
        name, op = key.split(".")
        results[name][op] = stats(taken)
    runwire, sqlite_result, redis_result = (
        results["runwire"],
        results["agents_sqlite"],
        results["agents_redis"],
    )
    reads_compared = ("get", "get_after_change", "get_cold", "get_last_turn")
    result = {
        "messages": n,
        "reads": args.reads,
        "reads_interleaved": True,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "load_average_1m_at_start": round(load_before, 2),
        "cpus": os.cpu_count(),
        "uptime": uptime,
        "get_after_change_session_messages": changed_sizes,
        "script_reply_bytes": {"warm_unchanged": warm_reply_bytes, "whole": whole_reply_bytes},
        **results,
        "memory": memory,
        "projectors": args.projectors,
        "add_goal": {
            "p50_ms_at_most": 3.0,
            "p99_ms_at_most": 10.0,
            "p50_no_slower_than_agents_sqlalchemy": True,
            "met": runwire["add"]["p50_ms"] <= 3.0
            and runwire["add"]["p99_ms"] <= 10.0
            and runwire["add"]["p50_ms"] <= results["agents_sqlalchemy"]["add"]["p50_ms"],
        },
        "add_ratio_over_agents_sqlalchemy": ratio(
            runwire["add"]["p50_ms"], results["agents_sqlalchemy"]["add"]["p50_ms"]
        ),
        "ratios_runwire_over": {
            name: {
                "add": ratio(runwire["add"]["p50_ms"], other["add"]["p50_ms"]),
                **{
                    op: ratio(
                        runwire[op]["p50_ms"],
                        other["get_last_turn" if op == "get_last_turn" else "get"]["p50_ms"],
                    )
                    for op in reads_compared
                },
                **{
                    f"{op}_p99": ratio(
                        runwire[op]["p99_ms"],
                        other["get_last_turn" if op == "get_last_turn" else "get"]["p99_ms"],
                    )
                    for op in reads_compared
                },
            }
            for name, other in (("agents_sqlite", sqlite_result), ("agents_redis", redis_result))
        },
    }
    print(f"{'':24}{'add p50':>10}{'add p99':>10}{'get p50':>10}{'get p99':>10}{'last p50':>10}")
    for name in ("runwire", "runwire_agents_adapter", "agents_sqlite", "agents_redis"):
        r = result[name]
        print(
            f"{name:24}{r['add']['p50_ms']:>10.3f}{r['add']['p99_ms']:>10.3f}"
            f"{r['get']['p50_ms']:>10.3f}{r['get']['p99_ms']:>10.3f}"
            f"{r['get_last_turn']['p50_ms']:>10.3f}"
        )
    alchemy_add = result["agents_sqlalchemy"]["add"]
    print(
        f"{'agents_sqlalchemy':24}{alchemy_add['p50_ms']:>10.3f}{alchemy_add['p99_ms']:>10.3f}"
        f"   (add only; projectors: {args.projectors}; add goal met: "
        f"{result['add_goal']['met']})"
    )
    for op in ("get_after_change", "get_cold", "session_script_call"):
        print(f"runwire {op}: p50 {runwire[op]['p50_ms']} ms, p99 {runwire[op]['p99_ms']} ms")
    print(f"after-change sessions held {changed_sizes} messages when read")
    print("script reply bytes:", result["script_reply_bytes"])
    print("ratios (runwire p50 / theirs):", json.dumps(result["ratios_runwire_over"]))
    print(
        f"load average {result['load_average_1m_at_start']} at start, "
        f"{result['load_average_1m']} at the end, on {result['cpus']} cpus; uptime: {uptime}"
    )
    print("memory:", json.dumps(memory))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sessions.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
