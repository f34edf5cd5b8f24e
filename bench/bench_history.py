"""Time travel and forks: what reading the past and sharing a prefix cost, same run.

For a session of ``--runs`` turns (each one run of a user and an assistant
message, written through the Session API):

- ``live``: ``get_messages()`` of the whole session (warm: the process holds
  it, the version is unchanged) - the everyday read, beside:
- ``live_cold``: the same with the backend's caches off (``decoded_bytes=0``):
  every run's stored messages transferred from Redis and decoded.
- ``as_of_mid``: ``get_messages(as_of=runs // 2)``: the history at the end of
  the middle turn, read from the log through the run reader (its runs found
  in the transcript cache's meta, read one pass per partition, folded).
- ``run_live`` / ``run_as_of``: one run mid-way: ``TranscriptCache.get`` beside
  ``get_at(run, offset=its last offset)`` (one run read back from its partition).
- ``fork_read``: ``get_messages()`` of a fork made at the middle turn that
  added one turn: its prefix (read from the log once, then held by the
  backend; each read asks the cache which prefix runs erasure left, one
  call), then its own runs.
- bytes: what the fork wrote (``session_created`` + ``session_forked``,
  encoded as on the wire) beside what copying its prefix would write (the
  encoded records of the prefix's runs, as they are on the log).

The reads take turns, one of each per round, so a shared machine's load
falls on all alike; the ratios are to ``live`` (and ``run_live``) of the
same rounds. Runs on fresh topics / schema / Redis keys of the stack
Settings() points at, the projectors running in this process:
    .venv/bin/python bench/bench_history.py [--runs 1000] [--rounds 30]
Writes bench/results/history.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from runwire.contract.codec import Codec
from runwire.contract.events import Event, SessionCreated, SessionForked
from runwire.infra.isolation import isolated_deployment
from runwire.sessions import AsyncSession
from runwire.sessions.embedded import projectors_running
from runwire.sessions.log_backend import LogBackend
from runwire.settings import Settings

RESULTS = Path(__file__).parent / "results" / "history.json"


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


def ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else float("inf")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    mid = args.runs // 2
    async with contextlib.AsyncExitStack() as stack:
        settings = await stack.enter_async_context(isolated_deployment(Settings(), "bench"))
        await stack.enter_async_context(projectors_running(settings))
        backend = await stack.enter_async_context(LogBackend(settings))
        cold = await stack.enter_async_context(LogBackend(settings, decoded_bytes=0))
        session = await stack.enter_async_context(AsyncSession(user_id="u", backend=backend))
        started = time.perf_counter()
        for n in range(args.runs):
            await session.add_messages(
                [("user", f"question {n} " * 8), ("assistant", f"answer {n} " * 20)]
            )
        write_seconds = time.perf_counter() - started
        again = await stack.enter_async_context(
            AsyncSession(session.session_id, user_id="u", backend=cold)
        )
        fork = await session.fork(turn=mid)
        await fork.add_messages([("user", "in the fork"), ("assistant", "yes")])
        turns = await session.turns()
        mid_run = turns[mid - 1].run_id
        cache = backend.cache
        last = (await cache.get_at(mid_run)).offset

        assert len(await session.get_messages(as_of=mid)) == 2 * mid
        assert len(await fork.get_messages()) == 2 * mid + 2

        ops: dict[str, Callable[[], Awaitable[Any]]] = {
            "live": session.get_messages,
            "live_cold": again.get_messages,
            "as_of_mid": lambda: session.get_messages(as_of=mid),
            "fork_read": fork.get_messages,
            "run_live": lambda: cache.get(mid_run),
            "run_as_of": lambda: cache.get_at(mid_run, offset=last),
        }
        samples: dict[str, list[float]] = {name: [] for name in ops}
        names = list(ops)
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                t0 = time.perf_counter()
                await ops[name]()
                samples[name].append(time.perf_counter() - t0)

        # Bytes: what the fork wrote, and what copying its prefix would have.
        info = await fork.info()
        assert info.fork is not None
        codec = Codec()
        forked = SessionForked(parent_session_id=session.session_id, **info.fork)
        payloads = (SessionCreated(user_id="u", metadata={}), forked)
        fork_bytes = sum(
            len(codec.encode(Event.create(p, session_id=fork.session_id, user_id="u")))
            + len(fork.session_id.encode())
            for p in payloads
        )
        records = await cache.history().records_now(info.fork["run_ids"])
        copy_bytes = sum(
            len(r.value) + len(r.key or b"") for recs in records.values() for r in recs
        )
        await fork.close()

    result_ops = {name: stats(s) for name, s in samples.items()}
    result = {
        "runs": args.runs,
        "fork_turn": mid,
        "rounds": args.rounds,
        "reads_interleaved": True,
        "write_seconds": round(write_seconds, 1),
        "load_average_1m_at_start": round(load_before, 2),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "reads": result_ops,
        "ratios_p50": {
            "as_of_mid_over_live": ratio(
                result_ops["as_of_mid"]["p50_ms"], result_ops["live"]["p50_ms"]
            ),
            "as_of_mid_over_live_cold": ratio(
                result_ops["as_of_mid"]["p50_ms"], result_ops["live_cold"]["p50_ms"]
            ),
            "fork_read_over_live": ratio(
                result_ops["fork_read"]["p50_ms"], result_ops["live"]["p50_ms"]
            ),
            "run_as_of_over_run_live": ratio(
                result_ops["run_as_of"]["p50_ms"], result_ops["run_live"]["p50_ms"]
            ),
        },
        "fork_bytes": fork_bytes,
        "copy_bytes": copy_bytes,
        "fork_over_copy": round(fork_bytes / copy_bytes, 4),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
