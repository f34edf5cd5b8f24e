"""The saver's loop thread: started on first use, shared with LangGraph's clones, closed once."""

from __future__ import annotations

import asyncio
import threading

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig

from runwire.checkpoint import RunwireSaver
from tests.support.langgraph_graphs import chat_graph


def _loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "runwire-checkpoint"]


def test_a_graph_compiled_before_setup_shares_the_savers_loop() -> None:
    before = len(_loop_threads())
    saver = RunwireSaver.in_memory()
    graph = chat_graph(saver)  # LangGraph may hand the graph a clone (with_allowlist)
    out = graph.invoke({"messages": [HumanMessage("hi")]}, {"configurable": {"thread_id": "t"}})
    assert [m.content for m in out["messages"]] == ["hi", "turn 1: hi"]
    assert len(_loop_threads()) == before + 1  # one loop for the saver and its clone
    assert saver.get_tuple({"configurable": {"thread_id": "t"}}) is not None
    saver.close()
    assert len(_loop_threads()) == before
    saver.close()  # idempotent


async def test_a_sync_call_on_the_savers_own_loop_refuses_instead_of_hanging() -> None:
    async with RunwireSaver.in_memory() as saver:

        async def sync_inside() -> None:
            saver.get_tuple({"configurable": {"thread_id": "t"}})

        with pytest.raises(RuntimeError, match="own loop thread"):
            await saver.on_loop(sync_inside())


async def test_one_saver_serves_several_event_loops() -> None:
    async with RunwireSaver.in_memory() as saver:
        graph = chat_graph(saver)

        def on_a_new_loop(i: int) -> str:
            async def turn() -> str:
                config: RunnableConfig = {"configurable": {"thread_id": f"loop-{i}"}}
                out = await graph.ainvoke({"messages": [HumanMessage(f"m{i}")]}, config)
                return str(out["messages"][-1].content)

            return asyncio.run(turn())

        answers = await asyncio.gather(*(asyncio.to_thread(on_a_new_loop, i) for i in range(3)))
        assert answers == [f"turn 1: m{i}" for i in range(3)]
