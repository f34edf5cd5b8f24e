"""Opening a session cold, by its length: runwire vs RedisSession, same run.

For sessions of ``--sizes`` messages (default 10, 100, 1,000, 10,000: user /
assistant text, one run per turn, as the Session API records them), each
written to runwire and to the Agents SDK's ``RedisSession`` on the same Redis:

- ``read``: a cold read of the last ``--turns`` turns (20):
  ``get_messages(limit=20)`` on a backend that holds nothing of the session
  (``decoded_bytes=0``, and its held view dropped before every read): what a
  process that has not read the session pays, the session already open.
  RedisSession: ``get_items(limit=40)`` (its items are messages: two a turn).
- ``open_read``: a new ``AsyncSession`` on the same (warm) backend, which
  described the session before (the owner check is then the cache's header:
  still there, not deleted), then the same read; RedisSession: a new
  ``RedisSession`` object, then the same read.
- ``first_open_read``: the same on a backend that has not described the
  session (what it knew of it dropped before every open): the owner check
  in the session index (Postgres), then the read.
- ``whole``: a cold ``get_messages()`` beside ``get_items()`` (sizes up to
  ``--whole-max``; a whole read grows with the session by nature).
- Reads take turns (one of each per round, the order rotating; one pass per
  kind of read) so a busy moment of the shared machine falls on all alike;
  each read's wall time and
  this process's CPU time (``time.process_time``: the projectors run as their
  own processes) are kept.
- Goals (issue: cold reads): ``read`` p50 at most 1.0x RedisSession's, p99
  at most 3x RedisSession's p50, and flat in the length: the largest p50
  across the sizes at most 1.5x the smallest of sizes holding ``--turns``
  turns or more (a smaller session reads fewer messages, which is no sign
  of growth). Beside the p99 goal, RedisSession's own p99 over its p50 in
  the same run: the tail this machine gives a read of that size at all.

The runwire sessions are written as the Session API writes them (recorded
runs, one per turn, ``run_started`` + ``paused`` + the two messages) straight
through the backend's publisher, many runs at once, so 10,000 messages take
seconds; the reads go through the Session API.

Runs on fresh topics / schema / Redis keys of the stack ``Settings()`` points
at (``runwire stack up``, or ``RUNWIRE_HOME=.runwire/test`` for the test
stack), the projectors as ``runwire serve`` processes:
    .venv/bin/python bench/bench_session_open.py [--rounds 200] [--sizes 10,100,1000,10000]
Writes bench/results/session_open.json.
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
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from agents.extensions.memory.redis_session import RedisSession

from bench_sessions import machine_uptime, ratio, settled
from bench_sessions import stats as wall_stats
from runwire.contract.events import SessionCreated, now
from runwire.infra.isolation import isolated_deployment
from runwire.log import publish_retrying
from runwire.memory.checks import Caller
from runwire.sessions import AsyncSession
from runwire.sessions.log_backend import LogBackend
from runwire.sessions.planning import check_run, run_events, session_event
from runwire.settings import Settings
from runwire.transcript.messages import Message, TextPart
from served import projectors

RESULTS = Path(__file__).parent / "results"
USER = "bench-open"
WARMUP_SHARE = 4
Read = Callable[[], Awaitable[Any]]


def text(i: int) -> str:
    return f"message {i}: " + "lorem ipsum dolor " * 6


async def write_runwire(backend: LogBackend, messages: int) -> str:
    """A session of ``messages`` messages, one recorded run per user / assistant turn."""
    caller = Caller(user_id=USER)
    session_id = f"open-{uuid.uuid4().hex[:12]}"
    base = now() - timedelta(hours=1)
    gate = asyncio.Semaphore(64)

    async def turn(i: int) -> None:
        run_id = f"run-{uuid.uuid4().hex}"
        pair = [
            Message(role=role, parts=(TextPart(text=text(2 * i + k)),))
            for k, role in enumerate(("user", "assistant"))
        ][: messages - 2 * i]
        payloads = check_run(run_id, [], pair, ["-"] * len(pair), token="bench")
        events = run_events(
            run_id,
            session_id,
            caller,
            payloads,
            token="bench",
            # Runs are ordered by their first event's time: one turn after another.
            at=base + timedelta(milliseconds=2 * i),
            source="session",
            turn_id=run_id,
        )
        async with gate:
            await publish_retrying(backend.publisher, events)

    await asyncio.gather(*(turn(i) for i in range((messages + 1) // 2)))
    created = SessionCreated(user_id=USER)
    await backend.write_session_events(
        [session_event(created, session_id, caller, token="bench", at=base)]
    )
    return session_id


async def write_redis(client: aioredis.Redis, prefix: str, messages: int) -> RedisSession:
    theirs = RedisSession(f"open-{uuid.uuid4().hex}", redis_client=client, key_prefix=prefix)
    items: list[Any] = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": text(i)} for i in range(messages)
    ]
    for at in range(0, messages, 500):
        await theirs.add_items(items[at : at + 500])
    return theirs


def stats(wall: list[float], cpu: list[float]) -> dict[str, float]:
    """Wall p50 / p99 / mean (ms, as bench_sessions gives them) and the CPU p50 (us)."""
    return {**wall_stats(wall), "cpu_p50_us": round(statistics.median(cpu) * 1e6, 1)}


async def interleaved(reads: dict[str, Read], rounds: int) -> dict[str, dict[str, float]]:
    """Each read ``rounds`` times taking turns, the order rotating, after
    ``rounds // 4`` untimed rounds; wall and CPU time of each."""
    names = list(reads)
    if not names:  # e.g. no size small enough for a whole read
        return {}
    for _ in range(rounds // WARMUP_SHARE):
        for name in names:
            await reads[name]()
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            c, w = time.process_time(), time.perf_counter()
            await reads[name]()
            wall[name].append(time.perf_counter() - w)
            cpu[name].append(time.process_time() - c)
    return {name: stats(wall[name], cpu[name]) for name in names}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--whole-max", type=int, default=1000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    turns = args.turns
    uptime_before, load_before = machine_uptime(), os.getloadavg()[0]
    async with contextlib.AsyncExitStack() as stack:
        settings = await stack.enter_async_context(isolated_deployment(Settings(), "bench"))
        projections = await stack.enter_async_context(projectors(settings, "processes"))
        writer = await stack.enter_async_context(LogBackend(settings))
        # Holds nothing between reads: every read transfers and decodes afresh.
        cold = await stack.enter_async_context(LogBackend(settings, decoded_bytes=0))
        client = aioredis.Redis.from_url(settings.redis_url)
        stack.push_async_callback(client.aclose)
        prefix = f"{settings.redis_key_prefix}:agents"
        ids: dict[int, str] = {}
        theirs: dict[int, RedisSession] = {}
        for n in sizes:
            started = time.perf_counter()
            ids[n] = await write_runwire(writer, n)
            theirs[n] = await write_redis(client, prefix, n)
            stack.push_async_callback(theirs[n].clear_session)
            print(f"wrote {n} messages in {time.perf_counter() - started:.1f} s", flush=True)
        await settled(projections, settings)
        ours = {
            n: await stack.enter_async_context(AsyncSession(ids[n], user_id=USER, backend=cold))
            for n in sizes
        }
        for n in sizes:
            got = await ours[n].get_messages(limit=turns)
            want = await theirs[n].get_items(limit=2 * turns)
            assert [m.text() for m in got] == [i["content"] for i in want], n  # type: ignore[typeddict-item]

        def read(n: int) -> Read:
            async def go() -> None:
                cold.view.forget(ids[n])
                await ours[n].get_messages(limit=turns)

            return go

        def open_read(n: int) -> Read:
            async def go() -> None:
                session = AsyncSession(ids[n], user_id=USER, backend=cold)
                await session.open()
                await session.get_messages(limit=turns)
                await session.close()

            return go

        def first_open_read(n: int) -> Read:
            async def go() -> None:
                # What the backend learnt of the session by describing it.
                cold._owners.pop(ids[n], None)
                cold._declared.pop(ids[n], None)
                await open_read(n)()

            return go

        def whole(n: int) -> Read:
            async def go() -> None:
                cold.view.forget(ids[n])
                await ours[n].get_messages()

            return go

        def redis_open_read(n: int) -> Read:
            async def go() -> None:
                fresh = RedisSession(theirs[n].session_id, redis_client=client, key_prefix=prefix)
                await fresh.get_items(limit=2 * turns)

            return go

        def redis_read(n: int) -> Read:
            return lambda: theirs[n].get_items(limit=2 * turns)

        # One pass per kind of read: a whole read of a long session makes
        # garbage (and collections) that would fall on the tail reads beside it.
        timed: dict[str, dict[str, float]] = {}
        timed |= await interleaved(
            {
                f"{n}.{who}.read": f
                for n in sizes
                for who, f in (("runwire", read(n)), ("redis", redis_read(n)))
            },
            args.rounds,
        )
        timed |= await interleaved(
            {
                f"{n}.{who}.{op}": f
                for n in sizes
                for who, op, f in (
                    ("runwire", "open_read", open_read(n)),
                    ("redis", "open_read", redis_open_read(n)),
                    ("runwire", "first_open_read", first_open_read(n)),
                    ("redis", "first_open_read", redis_open_read(n)),
                )
            },
            args.rounds,
        )
        timed |= await interleaved(
            {
                f"{n}.{who}.whole": f
                for n in sizes
                if n <= args.whole_max
                for who, f in (("runwire", whole(n)), ("redis", theirs[n].get_items))
            },
            args.rounds,
        )
    per_size: dict[str, Any] = {}
    for n in sizes:
        entry: dict[str, Any] = {}
        for key, value in timed.items():
            size, who, op = key.split(".")
            if int(size) == n:
                entry.setdefault(who, {})[op] = value
        ours_read, their_read = entry["runwire"]["read"], entry["redis"]["read"]
        entry["ratios_runwire_over_redis"] = {
            op: ratio(entry["runwire"][op]["p50_ms"], entry["redis"][op]["p50_ms"])
            for op in entry["runwire"]
        }
        entry["read_p99_over_redis_p50"] = ratio(ours_read["p99_ms"], their_read["p50_ms"])
        # The peer against the same bar: what this machine's tail allows a read
        # of this size at all.
        entry["redis_read_p99_over_own_p50"] = ratio(their_read["p99_ms"], their_read["p50_ms"])
        entry["read_cpu_ratio"] = ratio(ours_read["cpu_p50_us"], their_read["cpu_p50_us"])
        per_size[str(n)] = entry
    full = [n for n in sizes if n >= 2 * turns] or sizes
    p50s = [per_size[str(n)]["runwire"]["read"]["p50_ms"] for n in full]
    flat = ratio(max(p50s), min(p50s))
    worst_ratio = max(per_size[str(n)]["ratios_runwire_over_redis"]["read"] for n in sizes)
    worst_p99 = max(per_size[str(n)]["read_p99_over_redis_p50"] for n in sizes)
    their_worst_p99 = max(per_size[str(n)]["redis_read_p99_over_own_p50"] for n in sizes)
    result = {
        "sizes": sizes,
        "turns": turns,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "load_average_1m_at_start": round(load_before, 2),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "uptime": {"at_start": uptime_before, "at_end": machine_uptime()},
        "per_size": per_size,
        "read_flatness_max_over_min_p50": flat,
        "read_flatness_sizes": full,
        "goal": {
            "read_p50_over_redis_at_most": 1.0,
            "read_p99_over_redis_p50_at_most": 3.0,
            "flatness_at_most": 1.5,
            "worst_read_p50_over_redis": worst_ratio,
            "worst_read_p99_over_redis_p50": worst_p99,
            "redis_worst_read_p99_over_own_p50": their_worst_p99,
            "met": worst_ratio <= 1.0 and worst_p99 <= 3.0 and flat <= 1.5,
        },
    }
    header = f"{'messages':>9}{'op':>16}{'ours p50':>10}{'p99':>9}{'cpu us':>8}"
    print(header + f"{'redis p50':>11}{'p99':>9}{'cpu us':>8}{'ratio':>7}")
    for n in sizes:
        entry = per_size[str(n)]
        for op in entry["runwire"]:
            o, t = entry["runwire"][op], entry["redis"][op]
            print(
                f"{n:>9}{op:>16}{o['p50_ms']:>10.3f}{o['p99_ms']:>9.3f}{o['cpu_p50_us']:>8.0f}"
                f"{t['p50_ms']:>11.3f}{t['p99_ms']:>9.3f}{t['cpu_p50_us']:>8.0f}"
                f"{entry['ratios_runwire_over_redis'][op]:>7.2f}"
            )
    print(
        f"last-{turns}-turns read flatness (max/min p50 over {full}): {flat}; "
        f"worst p50 ratio {worst_ratio}, worst p99 / RedisSession p50 {worst_p99} "
        f"(RedisSession's own p99 / p50: {their_worst_p99}); "
        f"goal met: {result['goal']['met']}"
    )
    print(
        f"load average {result['load_average_1m_at_start']} at start, "
        f"{result['load_average_1m']} at the end, on {result['cpus']} cpus"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "session_open.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
