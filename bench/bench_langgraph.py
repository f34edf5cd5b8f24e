"""The LangGraph checkpointer side by side: ``RunwireSaver`` vs ``AsyncPostgresSaver``, same run.

Both on the same Postgres server (each in its own schema); runwire also on
Kafka, with its checkpoints projector running in this process.

- ``aput``: one checkpoint with a small changed channel, on one thread. runwire
  returns once the event is durable in Kafka (acks=all) *and* the checkpoints
  projection has applied it (read-your-writes); Postgres: the upserts committed.
- ``aget_tuple``: the thread's latest checkpoint (values and pending writes).
- ``aget_tuple_long_chat``: the latest checkpoint of the chat below once it
  has N checkpoints (runwire rebuilds its message list from the stored
  deltas; Postgres reads the whole list's blob).
- ``graph_turn``: one ``ainvoke`` of a real ``StateGraph(MessagesState)``
  (``START -> agent -> END``, a deterministic agent): LangGraph reads the
  latest checkpoint, then writes the input checkpoint, the task's writes and
  the agent's checkpoint.
- ``bytes after N steps``: the same chat run to N checkpoints (three per
  turn; each user message ``--text`` characters): what each keeps for the thread.
  Postgres: the logical bytes of its rows (blobs, checkpoint and metadata
  JSON, writes) and the tables' size on disk. runwire: the bytes of the
  records it wrote to Kafka (the log, kept forever) and the logical bytes of
  the projection's rows.
- The timed operations take turns (one of each saver per round), so the load
  of a shared machine falls on both alike and the ratios hold.

Runs on fresh topics / schemas of the stack ``Settings()`` points at
(``runwire stack up``, or ``RUNWIRE_HOME=.runwire/test`` for the test stack):
    .venv/bin/python bench/bench_langgraph.py [--ops 200] [--steps 200]
Writes bench/results/langgraph.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg import AsyncConnection
from tests.support.langgraph_graphs import chat_graph

from runwire.checkpoint import RunwireSaver
from runwire.checkpoint.log_store import LogCheckpointStore
from runwire.contract.codec import codec_for
from runwire.contract.events import Event
from runwire.infra.isolation import isolated_deployment
from runwire.settings import Settings

RESULTS = Path(__file__).parent / "results"


class CountingStore(LogCheckpointStore):
    """The log store, counting the encoded bytes of every record it writes."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._codec = codec_for(settings)
        self.log_bytes: dict[str, int] = {}

    async def append(self, events: Sequence[Event]) -> None:
        for event in events:
            thread = str(getattr(event.payload, "thread_id", ""))
            self.log_bytes[thread] = self.log_bytes.get(thread, 0) + len(self._codec.encode(event))
        await super().append(events)


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


async def interleaved(
    ops: dict[str, Callable[[], Awaitable[Any]]], rounds: int
) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in ops}
    names = list(ops)
    for i in range(rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            samples[name].append(await timed(ops[name]))
    return samples


def putter(saver: BaseCheckpointSaver[Any], thread: str) -> Callable[[], Awaitable[Any]]:
    state: dict[str, Any] = {"parent": None, "version": None, "n": 0}

    async def put() -> None:
        checkpoint = empty_checkpoint()
        version = saver.get_next_version(state["version"], None)
        checkpoint["channel_values"] = {"counter": state["n"], "note": f"step {state['n']}"}
        checkpoint["channel_versions"] = {"counter": version, "note": version}
        config: RunnableConfig = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        if state["parent"]:
            config["configurable"]["checkpoint_id"] = state["parent"]
        stored = await saver.aput(
            config,
            checkpoint,
            {"source": "loop", "step": state["n"], "parents": {}},
            {"counter": version, "note": version},
        )
        state.update(
            parent=stored["configurable"]["checkpoint_id"], version=version, n=state["n"] + 1
        )

    return put


def getter(saver: BaseCheckpointSaver[Any], thread: str) -> Callable[[], Awaitable[Any]]:
    async def get() -> None:
        found = await saver.aget_tuple({"configurable": {"thread_id": thread, "checkpoint_ns": ""}})
        assert found is not None

    return get


def turner(saver: BaseCheckpointSaver[Any], thread: str, text: str) -> Callable[[], Awaitable[Any]]:
    graph = chat_graph(saver)
    config: RunnableConfig = {"configurable": {"thread_id": thread}}

    async def turn() -> None:
        await graph.ainvoke({"messages": [HumanMessage(text)]}, config)

    return turn


async def postgres_bytes(saver: AsyncPostgresSaver, thread: str) -> dict[str, int]:
    conn = saver.conn
    assert isinstance(conn, AsyncConnection)  # from_conn_string: one connection
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT (SELECT coalesce(sum(octet_length(blob)), 0) FROM checkpoint_blobs WHERE thread_id = %s) AS blobs, "
            "(SELECT coalesce(sum(octet_length(checkpoint::text) + octet_length(metadata::text)), 0) "
            " FROM checkpoints WHERE thread_id = %s) AS checkpoints, "
            "(SELECT coalesce(sum(octet_length(blob)), 0) FROM checkpoint_writes WHERE thread_id = %s) AS writes, "
            "(SELECT pg_total_relation_size('checkpoint_blobs') + pg_total_relation_size('checkpoints') "
            " + pg_total_relation_size('checkpoint_writes')) AS on_disk",
            (thread, thread, thread),
        )
        row = await cur.fetchone()
    assert row is not None
    logical = int(row["blobs"]) + int(row["checkpoints"]) + int(row["writes"])
    return {
        "logical": logical,
        "blobs": int(row["blobs"]),
        "on_disk_all_threads": int(row["on_disk"]),
    }


async def runwire_bytes(saver: RunwireSaver, store: CountingStore, thread: str) -> dict[str, int]:
    async def read() -> dict[str, int]:
        async with store.reader._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT (SELECT coalesce(sum(octet_length(data) + coalesce(octet_length(items::text), 0)), 0) "
                " FROM checkpoint_values WHERE thread_id = %s), "
                "(SELECT coalesce(sum(octet_length(checkpoint::text) + octet_length(metadata::text)), 0) "
                " FROM checkpoint_index WHERE thread_id = %s), "
                "(SELECT coalesce(sum(octet_length(data)), 0) FROM checkpoint_pending_writes WHERE thread_id = %s)",
                (thread, thread, thread),
            )
            row = await cur.fetchone()
        assert row is not None
        values, checkpoints, writes = (int(x) for x in row)
        return {"projection_logical": values + checkpoints + writes, "values": values}

    found = await saver.on_loop(read())
    return {"log": store.log_bytes.get(thread, 0), **found}


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("inf")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=200)
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--text", type=int, default=400)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    base = Settings()
    text = ("lorem ipsum dolor sit amet " * (args.text // 27 + 1))[: args.text]
    async with contextlib.AsyncExitStack() as stack:
        settings = await stack.enter_async_context(isolated_deployment(base, "benchlg"))
        peer = await stack.enter_async_context(isolated_deployment(base, "benchpg"))
        store = CountingStore(settings)
        ours = await stack.enter_async_context(RunwireSaver(settings=settings, store=store))
        theirs = await stack.enter_async_context(
            AsyncPostgresSaver.from_conn_string(peer.postgres_dsn)
        )
        await theirs.setup()
        savers: dict[str, BaseCheckpointSaver[Any]] = {"runwire": ours, "postgres": theirs}

        # warm-up: connections, prepared statements, the projector's group
        for name, saver in savers.items():
            for _ in range(5):
                await putter(saver, f"warm-{name}")()
        puts = await interleaved({n: putter(s, f"put-{n}") for n, s in savers.items()}, args.ops)
        gets = await interleaved({n: getter(s, f"put-{n}") for n, s in savers.items()}, args.ops)
        turns = await interleaved(
            {n: turner(s, f"turn-{n}", text) for n, s in savers.items()}, args.turns
        )

        # storage: one chat thread to at least --steps checkpoints (a turn makes
        # three: its input, the loop's start and the agent's answer)
        grow = {n: turner(s, f"grow-{n}", text) for n, s in savers.items()}
        for _ in range(-(-args.steps // 3)):
            for fn in grow.values():
                await fn()
        steps = len(
            [c async for c in theirs.alist({"configurable": {"thread_id": "grow-postgres"}})]
        )
        steps_ours = len(
            [c async for c in ours.alist({"configurable": {"thread_id": "grow-runwire"}})]
        )
        assert steps == steps_ours, (steps, steps_ours)
        long_gets = await interleaved(
            {n: getter(s, f"grow-{n}") for n, s in savers.items()}, args.ops // 2
        )
        pg_bytes = await postgres_bytes(theirs, "grow-postgres")
        rw_bytes = await runwire_bytes(ours, store, "grow-runwire")

    result: dict[str, Any] = {
        "what": "RunwireSaver vs AsyncPostgresSaver (langgraph-checkpoint-postgres) on one Postgres",
        "runwire": {
            "aput": stats(puts["runwire"]),
            "aget_tuple": stats(gets["runwire"]),
            "graph_turn": stats(turns["runwire"]),
            "aget_tuple_long_chat": stats(long_gets["runwire"]),
            "bytes": rw_bytes,
        },
        "postgres": {
            "aput": stats(puts["postgres"]),
            "aget_tuple": stats(gets["postgres"]),
            "graph_turn": stats(turns["postgres"]),
            "aget_tuple_long_chat": stats(long_gets["postgres"]),
            "bytes": pg_bytes,
        },
        "steps": steps,
        "user_message_chars": args.text,
        "ops": args.ops,
        "turns": args.turns,
        "load_average_1m_at_start": round(load_before, 2),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    result["ratios_runwire_over_postgres"] = {
        **{
            f"{op}_p50": ratio(result["runwire"][op]["p50_ms"], result["postgres"][op]["p50_ms"])
            for op in ("aput", "aget_tuple", "graph_turn", "aget_tuple_long_chat")
        },
        "log_bytes_over_postgres_logical": ratio(rw_bytes["log"], pg_bytes["logical"]),
        "projection_bytes_over_postgres_logical": ratio(
            rw_bytes["projection_logical"], pg_bytes["logical"]
        ),
    }
    print(
        f"{'':12}{'aput p50':>10}{'aput p99':>10}{'get p50':>10}{'get p99':>10}{'turn p50':>10}{'turn p99':>10}"
    )
    for name in ("runwire", "postgres"):
        r = result[name]
        print(
            f"{name:12}{r['aput']['p50_ms']:>10.3f}{r['aput']['p99_ms']:>10.3f}"
            f"{r['aget_tuple']['p50_ms']:>10.3f}{r['aget_tuple']['p99_ms']:>10.3f}"
            f"{r['graph_turn']['p50_ms']:>10.3f}{r['graph_turn']['p99_ms']:>10.3f}"
        )
    print(
        f"bytes after {steps} steps: runwire {json.dumps(rw_bytes)}; postgres {json.dumps(pg_bytes)}"
    )
    print("ratios (runwire / postgres):", json.dumps(result["ratios_runwire_over_postgres"]))
    print(
        f"load average {result['load_average_1m_at_start']} -> {result['load_average_1m']} on {result['cpus']} cpus"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "langgraph.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
