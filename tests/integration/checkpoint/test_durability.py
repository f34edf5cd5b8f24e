"""A LangGraph conversation on runwire survives its process, and a rebuild of its read model."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from psycopg.rows import dict_row

from runwire.checkpoint import RunwireSaver
from runwire.projections.checkpoints.projection import CheckpointsProjection
from runwire.projections.runtime.pg import Pool
from runwire.projections.runtime.rebuild import rebuild
from runwire.settings import Settings
from tests.support.langgraph_graphs import chat_graph

ROOT = Path(__file__).resolve().parents[3]


async def _turn_then_kill(settings: Settings, thread: str, text: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.checkpoint.chat_process",
        json.dumps(settings.model_dump(mode="json", exclude={"home", "cache_dir"})),
        thread,
        text,
        stdout=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    messages: list[str] = json.loads(line)
    return messages


async def test_a_conversation_survives_its_process_being_killed(settings: Settings) -> None:
    thread = f"chat-{uuid.uuid4().hex[:8]}"
    first = await _turn_then_kill(settings, thread, "hello")
    assert first == ["hello", "turn 1: hello"]
    second = await _turn_then_kill(settings, thread, "again")
    assert second == ["hello", "turn 1: hello", "again", "turn 2: again"]
    async with RunwireSaver(settings=settings) as saver:
        history = [
            s
            async for s in chat_graph(saver).aget_state_history(
                {"configurable": {"thread_id": thread}}
            )
        ]
    assert len(history) == 6
    assert [m.content for m in history[0].values["messages"]] == second


async def _tables(pool: Pool) -> list[Any]:
    out: list[Any] = []
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        for query in (
            "SELECT * FROM checkpoint_index ORDER BY thread_id, checkpoint_ns, checkpoint_id",
            "SELECT * FROM checkpoint_values ORDER BY thread_id, checkpoint_ns, channel, version",
            "SELECT * FROM checkpoint_pending_writes ORDER BY thread_id, checkpoint_ns, checkpoint_id, "
            "task_id, idx",
        ):
            await cur.execute(query.encode())
            out.append(await cur.fetchall())
    return out


async def test_a_rebuild_from_the_log_gives_the_same_checkpoints(
    settings: Settings, pool: Pool
) -> None:
    async with RunwireSaver(settings=settings) as saver:
        graph = chat_graph(saver)
        configs: list[RunnableConfig] = [{"configurable": {"thread_id": f"t{i}"}} for i in range(3)]
        for turn in range(3):
            for config in configs:
                await graph.ainvoke({"messages": [HumanMessage(f"m{turn}")]}, config)
        await saver.acopy_thread("t0", "t0-copy")
        await saver.aprune(["t1"], strategy="keep_latest")
        await saver.adelete_thread("t2")
        before = await _tables(pool)
        projection = CheckpointsProjection(pool, settings)
        report = await rebuild(projection, settings)
        assert report is not None
        after = await _tables(pool)
        assert after == before
        assert {r["thread_id"] for r in after[0]} == {"t0", "t0-copy", "t1"}
        copied = await graph.aget_state({"configurable": {"thread_id": "t0-copy"}})
        original = await graph.aget_state({"configurable": {"thread_id": "t0"}})
        assert copied.values == original.values
        pruned = [s async for s in graph.aget_state_history({"configurable": {"thread_id": "t1"}})]
        assert len(pruned) == 1
        assert [m.content for m in pruned[0].values["messages"]][-1] == "turn 3: m2"


async def test_a_saver_without_its_own_projector_waits_for_the_served_one(
    settings: Settings,
) -> None:
    thread: RunnableConfig = {"configurable": {"thread_id": f"served-{uuid.uuid4().hex[:8]}"}}
    async with (
        RunwireSaver(settings=settings) as serving,  # its projector stands for a served one
        RunwireSaver(settings=settings, run_projector=False) as client,
    ):
        out = await chat_graph(client).ainvoke({"messages": [HumanMessage("hi")]}, thread)
        assert [m.content for m in out["messages"]] == ["hi", "turn 1: hi"]
        seen = await chat_graph(serving).aget_state(thread)
        assert seen.values == out
