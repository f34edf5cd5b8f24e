"""A checkpoint thread is (tenant, thread id): two tenant processes using the same
thread id keep two threads, in writes, reads, deletes, prunes, copies and a rebuild."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.conformance.test_utils import generate_checkpoint, generate_metadata
from psycopg.rows import dict_row

from runwire.checkpoint import RunwireSaver
from runwire.projections.checkpoints.projection import CheckpointsProjection
from runwire.projections.runtime.pg import Pool
from runwire.projections.runtime.rebuild import rebuild
from runwire.settings import Settings
from tests.support.langgraph_graphs import chat_graph

A, B = "tenant-a", "tenant-b"
THREAD = "the-same-thread"
CONFIG: RunnableConfig = {"configurable": {"thread_id": THREAD}}


def _thread(name: str) -> RunnableConfig:
    return {"configurable": {"thread_id": name}}


async def _said(saver: RunwireSaver, config: RunnableConfig = CONFIG) -> list[str]:
    state = await chat_graph(saver).aget_state(config)
    return [m.content for m in state.values.get("messages", [])]


async def _count(saver: RunwireSaver, config: RunnableConfig = CONFIG) -> int:
    return len([c async for c in saver.alist(config)])


async def _tables(pool: Pool) -> list[Any]:
    out: list[Any] = []
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        for table, key in (
            ("checkpoint_index", "checkpoint_ns, checkpoint_id"),
            ("checkpoint_values", "checkpoint_ns, channel, version"),
            ("checkpoint_pending_writes", "checkpoint_ns, checkpoint_id, task_id, idx"),
        ):
            await cur.execute(
                f"SELECT * FROM {table} ORDER BY tenant NULLS FIRST, thread_id, {key}".encode()
            )
            out.append(await cur.fetchall())
    return out


async def test_two_tenants_with_one_thread_id_keep_two_threads(
    settings: Settings, pool: Pool
) -> None:
    async with (
        RunwireSaver(settings=settings.model_copy(update={"tenant": A})) as a,
        RunwireSaver(settings=settings.model_copy(update={"tenant": B})) as b,
        RunwireSaver(settings=settings) as shared,  # no tenant: one more owner
    ):
        for turn in range(2):
            await chat_graph(a).ainvoke({"messages": [HumanMessage(f"a{turn}")]}, CONFIG)
        await chat_graph(b).ainvoke({"messages": [HumanMessage("b0")]}, CONFIG)
        await chat_graph(shared).ainvoke({"messages": [HumanMessage("s0")]}, CONFIG)
        assert await _said(a) == ["a0", "turn 1: a0", "a1", "turn 2: a1"]
        assert await _said(b) == ["b0", "turn 1: b0"]
        assert await _said(shared) == ["s0", "turn 1: s0"]
        assert (await _count(a), await _count(b), await _count(shared)) == (6, 3, 3)
        # Each tenant's list over all threads is its own.
        assert len([c async for c in a.alist(None)]) == 6
        assert len([c async for c in shared.alist(None)]) == 3

        # Same-id rows side by side: each tenant's own key.
        index = (await _tables(pool))[0]
        assert sorted({(r["tenant"] or "", r["thread_id"]) for r in index}) == [
            ("", THREAD),
            (A, THREAD),
            (B, THREAD),
        ]

        # What one tenant does to its thread leaves the other's alone.
        await b.adelete_thread(THREAD)
        assert await b.aget_tuple(CONFIG) is None
        assert await _said(a) == ["a0", "turn 1: a0", "a1", "turn 2: a1"]
        await chat_graph(b).ainvoke({"messages": [HumanMessage("b again")]}, CONFIG)
        await a.aprune([THREAD], strategy="keep_latest")
        assert (await _count(a), await _count(b), await _count(shared)) == (1, 3, 3)
        assert await _said(a) == ["a0", "turn 1: a0", "a1", "turn 2: a1"]
        assert await _said(b) == ["b again", "turn 1: b again"]
        await a.acopy_thread(THREAD, "copy")
        assert await _said(a, _thread("copy")) == await _said(a)
        assert await b.aget_tuple(_thread("copy")) is None
        # Runs of the same id on the same thread id: one tenant's delete is its own.
        runs = _thread("runs")
        for saver in (a, shared):
            await saver.aput(runs, generate_checkpoint(), generate_metadata(run_id="r1"), {})
        await shared.adelete_for_runs(["r1"])
        assert (await _count(shared, runs), await _count(a, runs)) == (0, 1)
        await a.adelete_for_runs(["r1"])
        assert await _count(a, runs) == 0
        assert (await _count(a), await _count(b), await _count(shared)) == (1, 3, 3)

        # A rebuild from the log gives the same rows: each event's tenant picks its thread.
        before = await _tables(pool)
        assert (await rebuild(CheckpointsProjection(pool, settings), settings)) is not None
        assert await _tables(pool) == before
        assert await _said(a) == ["a0", "turn 1: a0", "a1", "turn 2: a1"]
        assert await _said(b) == ["b again", "turn 1: b again"]
