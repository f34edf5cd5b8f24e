"""What naming the version costs: a versioned session write beside a plain one, same run.

- ``plain``: ``add_messages([user, assistant])`` (a new run, returned at the
  broker's ack; the backend serves it until the projections have it).
- ``versioned``: the same with ``expected_version`` (the claim on the
  session-events topic and the wait for the session index, the write, the
  wait until the transcript cache has it, the release and its wait): the
  price of the single-writer fence.
- ``get_versioned`` beside ``get_messages``: the version read first (a session
  index query) then the history.
- Turns alternate plain / versioned on two sessions of one backend, so the
  load of a shared machine falls on both alike; the ratios are versioned / plain.

Runs on fresh topics / schema / Redis keys of the stack Settings() points at
(``runwire stack up``, or ``RUNWIRE_HOME=.runwire/test`` for the test stack),
with the projectors running in this process:
    .venv/bin/python bench/bench_single_writer.py [--turns 100]
Writes bench/results/single_writer.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from runwire.infra.isolation import isolated_deployment
from runwire.sessions import AsyncSession
from runwire.sessions.embedded import projectors_running
from runwire.sessions.log_backend import LogBackend
from runwire.settings import Settings

RESULTS = Path(__file__).parent / "results"


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=100)
    args = parser.parse_args()
    times: dict[str, list[float]] = {
        "plain": [],
        "versioned": [],
        "get_messages": [],
        "get_versioned": [],
    }
    async with contextlib.AsyncExitStack() as stack:
        settings = await stack.enter_async_context(isolated_deployment(Settings(), "bench"))
        await stack.enter_async_context(projectors_running(settings))
        backend = await stack.enter_async_context(LogBackend(settings))
        plain = await stack.enter_async_context(AsyncSession(user_id="u", backend=backend))
        fenced = await stack.enter_async_context(AsyncSession(user_id="u", backend=backend))
        version = 0
        for i in range(args.turns):
            pair = [("user", f"q{i}"), ("assistant", f"a{i}")]
            order = ["plain", "versioned"] if i % 2 else ["versioned", "plain"]
            for kind in order:
                started = time.perf_counter()
                if kind == "plain":
                    await plain.add_messages(pair)
                else:
                    new = await fenced.add_messages(pair, expected_version=version)
                    assert new == version + 1
                    version = new
                times[kind].append(time.perf_counter() - started)
            for kind in ["get_messages", "get_versioned"][:: 1 if i % 2 else -1]:
                started = time.perf_counter()
                if kind == "get_messages":
                    await fenced.get_messages()
                else:
                    await fenced.get_versioned()
                times[kind].append(time.perf_counter() - started)
    results: dict[str, Any] = {name: stats(t) for name, t in times.items()}
    results["ratios"] = {
        "versioned_vs_plain_p50": round(
            results["versioned"]["p50_ms"] / results["plain"]["p50_ms"], 2
        ),
        "get_versioned_vs_get_messages_p50": round(
            results["get_versioned"]["p50_ms"] / results["get_messages"]["p50_ms"], 2
        ),
    }
    results["turns"] = args.turns
    results["load"] = os.getloadavg()[0]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "single_writer.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
