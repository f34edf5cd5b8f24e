"""A three-level agent tree's overhead per level, against a plain run in the same process.

Three agents from an agents file: ``helper`` (the calculator), ``manager``
(calls ``helper`` as a tool), ``boss`` (calls ``manager``). The same question
is asked at depth 0 (``helper`` directly), 1 (``manager``) and 2 (``boss``),
one run at a time, with the local model (no latency) and the real orchestrator
and tool runner on the stack. Each level adds: the parent's tool call, a child
run (start, its model calls, its tool call), its answer back as the parent's
tool result, and the parent's next model call.

Printed and written to bench/results/agent_tree.json: p50/p90 end-to-end
seconds per depth (from ``Client.run`` to the terminal event read back), the
overhead per level ((depth 2 - depth 0) / 2, and each step), and the ratio of
a level's overhead to the plain run measured in the same run (a level costs
about one more run and one more tool round trip, so ~2x is the floor). The
machine's load average is recorded: other processes on the cores move every
figure.

Run against a running stack (``runwire stack up``, or ``RUNWIRE_HOME=.runwire/test``):
    .venv/bin/python bench/bench_agent_tree.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from runwire.client import Client
from runwire.contract.events import RunStatus
from runwire.infra.isolation import isolated_deployment
from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.services.tools.wiring import tool_runner_service
from runwire.settings import Settings

RESULTS = Path(__file__).parent / "results"
AGENTS = """
[agents.boss]
agents = ["manager"]
history = false

[agents.manager]
agents = ["helper"]
history = false

[agents.helper]
tools = ["calculator"]
history = false
"""
PROMPTS = {
    0: ("helper", "what is {i} * 7 + 1?"),
    1: ("manager", "ask helper to what is {i} * 7 + 1?"),
    2: ("boss", "ask manager to ask helper to what is {i} * 7 + 1?"),
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(settings: Settings, runs: int) -> dict[int, list[float]]:
    times: dict[int, list[float]] = {d: [] for d in PROMPTS}
    async with (
        orchestrator_service(settings, history=False),
        tool_runner_service(settings),
        Client(settings) as rw,
    ):
        for i in range(runs + 2):  # the first two of each depth warm up
            for depth, (agent, prompt) in PROMPTS.items():
                started = time.perf_counter()
                outcome = await (await rw.run(agent, prompt.format(i=i))).wait(timeout=120)
                seconds = time.perf_counter() - started
                if outcome.status is not RunStatus.COMPLETED or str(i * 7 + 1) not in outcome.text:
                    raise SystemExit(f"depth {depth} run {i} did not answer: {outcome.events}")
                if i >= 2:
                    times[depth].append(seconds)
    return times


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    base = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "agents.toml"
        path.write_text(AGENTS)
        async with isolated_deployment(base, "bench") as settings:
            mine = settings.model_copy(update={"agents_file": path})
            times = await measure(mine, args.runs)
    p50 = {d: statistics.median(t) for d, t in times.items()}
    per_level = (p50[2] - p50[0]) / 2
    result = {
        "runs_per_depth": args.runs,
        "load_average": os.getloadavg(),
        "p50_seconds": {str(d): round(v, 4) for d, v in p50.items()},
        "p90_seconds": {str(d): round(percentile(t, 0.9), 4) for d, t in times.items()},
        "overhead_per_level_seconds": round(per_level, 4),
        "overhead_level_1_seconds": round(p50[1] - p50[0], 4),
        "overhead_level_2_seconds": round(p50[2] - p50[1], 4),
        "level_vs_plain_run": round(per_level / p50[0], 2),
    }
    for depth in PROMPTS:
        print(f"depth {depth}: p50 {p50[depth] * 1000:.1f} ms")
    print(
        f"overhead per level: {per_level * 1000:.1f} ms "
        f"= {result['level_vs_plain_run']}x a plain run ({p50[0] * 1000:.1f} ms)"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "agent_tree.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
