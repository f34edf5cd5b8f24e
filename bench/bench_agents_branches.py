"""``RunwireSession`` branches beside the Agents SDK's ``AdvancedSQLiteSession``, in one run.

One session of ``--turns`` turns (a user item and an ``output_text`` assistant
item each), in each of:

- ``runwire``: a branch is a fork (``session_forked`` names the parent's runs:
  nothing copied); the branch's ``get_items()`` folds the shared runs from the
  log once per session object, later reads only ask the cache which shared
  runs are still there, then read the branch's own items.
- ``advanced_sqlite``: ``AdvancedSQLiteSession`` on a file; a branch copies
  the rows of the turns before it.

Measured, p50 / p99 over ``--rounds`` (reads interleaved, the order rotating), and
this process's CPU per branch (the servers' is not in it):

- ``branch``: ``create_branch_from_turn(turns)`` then ``switch_to_branch("main")``
  (a new branch each round, sharing ``turns - 1`` turns);
- ``get_branch``: ``get_items()`` on a branch holding the shared turns and one
  turn of its own, the prefix held (the Runner's read on a branch);
- ``get_branch_cold`` (runwire only): the same read on a fresh session object
  (the shared runs folded from the log);
- ``get_main``: ``get_items()`` on the main branch (all turns), for reference.

Runs on fresh topics / schema / Redis keys of the stack Settings() points at,
with the projectors running in this process:
    .venv/bin/python bench/bench_agents_branches.py [--turns 50] [--rounds 30]
Writes bench/results/agents_branches.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from agents.extensions.memory.advanced_sqlite_session import AdvancedSQLiteSession

from bench_agents_session import interleaved, item, ratio, settled, stats
from runwire.infra.isolation import isolated_deployment
from runwire.sessions.embedded import projectors_running
from runwire.sessions.openai_agents import RunwireSession, close_shared_backends
from runwire.settings import Settings

RESULTS = Path(__file__).parent / "results"
NOTE = (
    "branch: runwire writes session_created + session_forked (the parent's runs named, no "
    "item copied) and waits for the index; AdvancedSQLiteSession copies the rows before the "
    "turn. get_branch: runwire reads the branch's own items from the cache and the shared "
    "prefix it holds (one cache call checks the shared runs are still there); "
    "get_branch_cold: a fresh object folds the shared runs from the log first."
)
Timed = Callable[[], Awaitable[Any]]


async def timed(work: Timed, rounds: int) -> tuple[list[float], float]:
    """Wall seconds per call, and this process's CPU seconds per call (its client side
    and, for runwire, the projectors it runs; the servers' CPU is not in it)."""
    out: list[float] = []
    cpu = time.process_time()
    for _ in range(rounds):
        start = time.perf_counter()
        await work()
        out.append(time.perf_counter() - start)
    return out, (time.process_time() - cpu) / rounds


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    turns, rounds = args.turns, args.rounds
    async with contextlib.AsyncExitStack() as stack:
        settings: Settings = await stack.enter_async_context(
            isolated_deployment(Settings(), "bench")
        )
        projections = await stack.enter_async_context(projectors_running(settings))
        stack.push_async_callback(asyncio.to_thread, close_shared_backends)
        ours = RunwireSession(user_id="bench", settings=settings)
        stack.push_async_callback(ours.close)
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        sdk = AdvancedSQLiteSession(
            session_id=f"bench-{uuid.uuid4().hex}",
            db_path=Path(tmp) / "advanced.db",
            create_tables=True,
        )
        stack.callback(sdk.close)
        sessions: dict[str, Any] = {"runwire": ours, "advanced_sqlite": sdk}
        for session in sessions.values():
            for t in range(turns):
                await session.add_items([item(2 * t), item(2 * t + 1)])
        await settled(projections, settings)

        branching: dict[str, list[float]] = {}
        branch_cpu: dict[str, float] = {}
        for name, session in sessions.items():

            async def branch(session: Any = session) -> None:
                await session.create_branch_from_turn(turns)
                await session.switch_to_branch("main")

            branching[name], branch_cpu[name] = await timed(branch, rounds)

        # One branch each with a turn of its own: what the reads read.
        own = [item(2 * turns), item(2 * turns + 1)]
        branch_ids: dict[str, str] = {}
        for name, session in sessions.items():
            branch_ids[name] = await session.create_branch_from_turn(turns, f"read-{name}")
            await session.add_items(own)
        expected = [*(item(i) for i in range(2 * (turns - 1))), *own]
        for name, session in sessions.items():
            assert await session.get_items() == expected, f"{name} gives the branch's items"
        mains: dict[str, Any] = {
            "runwire": RunwireSession(ours.session_id, user_id="bench", settings=settings),
            "advanced_sqlite": AdvancedSQLiteSession(
                session_id=sdk.session_id, db_path=Path(tmp) / "advanced.db"
            ),
        }
        stack.push_async_callback(mains["runwire"].close)
        stack.callback(mains["advanced_sqlite"].close)
        reads: dict[str, Timed] = {}
        for name in sessions:
            reads[f"{name}.get_branch"] = sessions[name].get_items
            reads[f"{name}.get_main"] = mains[name].get_items

        async def cold() -> None:
            fresh = RunwireSession(ours.session_id, user_id="bench", settings=settings)
            await fresh.switch_to_branch(branch_ids["runwire"])
            start = time.perf_counter()
            await fresh.get_items()
            cold_samples.append(time.perf_counter() - start)
            await fresh.close()

        cold_samples: list[float] = []
        reads["runwire.cold"] = cold
        samples = await interleaved(reads, rounds)
    result: dict[str, Any] = {
        "turns": turns,
        "rounds": rounds,
        "cpus": os.cpu_count(),
        "load_average_1m_at_start": round(load_before, 2),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    for name in sessions:
        result[name] = {
            "branch": stats(branching[name]),
            "branch_process_cpu_ms": round(branch_cpu[name] * 1000, 3),
            "get_branch": stats(samples[f"{name}.get_branch"]),
            "get_main": stats(samples[f"{name}.get_main"]),
        }
    # Only the timed reads of fresh objects (the warm-up rounds' too: each is cold).
    result["runwire"]["get_branch_cold"] = stats(cold_samples)
    result["note"] = NOTE
    result["ratios_runwire_over_advanced_sqlite"] = {
        op: ratio(result["runwire"][op]["p50_ms"], result["advanced_sqlite"][op]["p50_ms"])
        for op in ("branch", "get_branch", "get_main")
    }
    result["runwire_branch_over_main_get"] = ratio(
        result["runwire"]["get_branch"]["p50_ms"], result["runwire"]["get_main"]["p50_ms"]
    )
    print(f"{'':18}{'branch p50':>12}{'p99':>10}{'get_branch':>12}{'p99':>10}{'get_main':>10}")
    for name in sessions:
        r = result[name]
        print(
            f"{name:18}{r['branch']['p50_ms']:>12.3f}{r['branch']['p99_ms']:>10.3f}"
            f"{r['get_branch']['p50_ms']:>12.3f}{r['get_branch']['p99_ms']:>10.3f}"
            f"{r['get_main']['p50_ms']:>10.3f}"
        )
    print(
        "process CPU per branch (ms): "
        + ", ".join(f"{n} {result[n]['branch_process_cpu_ms']}" for n in sessions)
    )
    print(f"runwire get_branch cold (fresh object): {result['runwire']['get_branch_cold']}")
    print(
        "ratios (runwire p50 / AdvancedSQLiteSession):",
        result["ratios_runwire_over_advanced_sqlite"],
    )
    print("runwire get_branch / get_main (p50):", result["runwire_branch_over_main_get"])
    print(
        f"load average {result['load_average_1m_at_start']} at start, "
        f"{result['load_average_1m']} at the end, on {result['cpus']} cpus"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "agents_branches.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
