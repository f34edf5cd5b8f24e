"""The checkpointer contract: LangGraph's own conformance suite, a real graph, deltas.

Subclasses provide ``saver`` (a started :class:`~runwire.checkpoint.RunwireSaver`
on one implementation of the store seam) and ``stored_bytes`` (the bytes of
channel values and writes its log holds for a thread).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES
from langgraph.checkpoint.conformance.test_utils import (
    generate_checkpoint,
    generate_config,
    generate_metadata,
)

from runwire.checkpoint import RunwireSaver
from runwire.checkpoint.protocol import CheckpointRefusedError
from runwire.contract.events import (
    CheckpointPruned,
    Event,
    UserMessage,
)
from runwire.errors import ContractError, InputError
from runwire.projections.checkpoints.fold import InvalidCheckpointEvent
from tests.support.langgraph_graphs import chat_graph


def _thread() -> RunnableConfig:
    return {"configurable": {"thread_id": f"thread-{uuid.uuid4().hex[:12]}"}}


class CheckpointContract:
    @pytest.fixture
    def saver(self) -> RunwireSaver:
        raise NotImplementedError("each implementation provides its started saver")

    async def test_langgraph_conformance_is_full(self, saver: RunwireSaver) -> None:
        @checkpointer_test(name=f"RunwireSaver[{type(saver.store).__name__}]")
        async def factory() -> AsyncIterator[RunwireSaver]:
            yield saver

        report = await validate(factory)
        failures = [f for r in report.results.values() for f in r.failures]
        assert report.conformance_level() == "FULL", failures
        detected = {name for name, r in report.results.items() if r.detected}
        assert detected == {c.value for c in ALL_CAPABILITIES}
        assert all(r.passed and r.tests_passed > 0 for r in report.results.values())

    async def test_a_messages_graph_runs_multi_turn(self, saver: RunwireSaver) -> None:
        graph = chat_graph(saver)
        config = _thread()
        for turn in range(1, 4):
            out = await graph.ainvoke({"messages": [HumanMessage(f"hello {turn}")]}, config)
        assert [m.content for m in out["messages"]] == [
            "hello 1",
            "turn 1: hello 1",
            "hello 2",
            "turn 2: hello 2",
            "hello 3",
            "turn 3: hello 3",
        ]
        state = await graph.aget_state(config)
        assert [m.content for m in state.values["messages"]][-1] == "turn 3: hello 3"
        assert state.next == ()

    async def test_time_travel_replays_and_forks_from_a_checkpoint(
        self, saver: RunwireSaver
    ) -> None:
        graph = chat_graph(saver)
        config = _thread()
        for turn in range(1, 3):
            await graph.ainvoke({"messages": [HumanMessage(f"q{turn}")]}, config)
        history = [s async for s in graph.aget_state_history(config)]
        steps = [s.metadata["step"] for s in history if s.metadata is not None]
        assert steps == sorted(steps, reverse=True)
        assert len(history) == 6  # two turns: input, agent, (and the -1 input) each
        # The checkpoint after the first answer, replayed with a new question: a fork.
        first_answer = next(
            s for s in history if [m.content for m in s.values["messages"]] == ["q1", "turn 1: q1"]
        )
        forked = await graph.ainvoke({"messages": [HumanMessage("other")]}, first_answer.config)
        assert [m.content for m in forked["messages"]] == [
            "q1",
            "turn 1: q1",
            "other",
            "turn 2: other",
        ]
        latest = await graph.aget_state(config)
        assert [m.content for m in latest.values["messages"]][-1] == "turn 2: other"
        # The original branch is still there, unchanged.
        old_head = await graph.aget_state(history[0].config)
        assert [m.content for m in old_head.values["messages"]][-1] == "turn 2: q2"
        # Replay from a checkpoint without input: it re-runs what came next there.
        before_answer = next(s for s in history if s.next == ("agent",))
        replayed = await graph.ainvoke(None, before_answer.config)
        assert replayed["messages"][-1].content.startswith("turn ")

    async def test_list_values_grow_by_their_new_items(self, saver: RunwireSaver) -> None:
        graph = chat_graph(saver)
        config = _thread()
        thread_id = config["configurable"]["thread_id"]
        per_turn: list[int] = []
        before = await self.stored_bytes(saver, thread_id)
        for turn in range(1, 31):
            await graph.ainvoke({"messages": [HumanMessage(f"message number {turn}")]}, config)
            now = await self.stored_bytes(saver, thread_id)
            per_turn.append(now - before)
            before = now
        # A turn stores its two new messages (and the writes), not the whole history:
        # the 30th turn costs what the 2nd did, within serialization noise.
        assert per_turn[-1] < per_turn[1] * 1.5, per_turn
        state = await graph.aget_state(config)
        assert len(state.values["messages"]) == 60

    async def stored_bytes(self, saver: RunwireSaver, thread_id: str) -> int:
        raise NotImplementedError

    async def test_sync_methods_work_from_worker_threads(self, saver: RunwireSaver) -> None:
        graph = chat_graph(saver)

        def converse(i: int) -> list[str]:
            config = _thread()
            out: dict[str, Any] = {}
            for turn in range(2):
                out = graph.invoke({"messages": [HumanMessage(f"w{i}-{turn}")]}, config)
            # The other sync twins, from this worker thread too.
            thread = config["configurable"]["thread_id"]
            assert len(list(graph.get_state_history(config))) == 6
            saver.copy_thread(thread, f"{thread}-copy")
            saver.prune([f"{thread}-copy"], strategy="keep_latest")
            assert len(list(saver.list({"configurable": {"thread_id": f"{thread}-copy"}}))) == 1
            saver.delete_for_runs(["no-such-run"])
            saver.delete_thread(f"{thread}-copy")
            assert saver.get_tuple({"configurable": {"thread_id": f"{thread}-copy"}}) is None
            return [m.content for m in out["messages"]]

        loop = asyncio.get_running_loop()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            results = await asyncio.gather(
                *(loop.run_in_executor(pool, converse, i) for i in range(4))
            )
        for i, messages in enumerate(results):
            assert messages == [f"w{i}-0", f"turn 1: w{i}-0", f"w{i}-1", f"turn 2: w{i}-1"]

    async def test_bad_input_names_the_field_and_writes_nothing(self, saver: RunwireSaver) -> None:
        config = generate_config()
        checkpoint = generate_checkpoint()
        with pytest.raises(InputError) as info:
            await saver.aput(config, checkpoint, generate_metadata(when={1, 2}), {})
        assert "metadata" in info.value.field
        too_long = generate_config("t" * 201)
        with pytest.raises(InputError) as info:
            await saver.aput(too_long, checkpoint, generate_metadata(), {})
        assert info.value.field == "payload.thread_id"
        with pytest.raises(InputError) as info:
            await saver.aprune([config["configurable"]["thread_id"]], strategy="most")
        assert info.value.field == "strategy"
        big = generate_checkpoint(channel_values={"small": 1, "big": "x" * 1_000_000})
        with pytest.raises(InputError) as info:
            await saver.aput(config, big, generate_metadata(), {"small": 1, "big": 1})
        assert info.value.field == "checkpoint.channel_values['big']"
        assert "max_event_bytes" in info.value.reason
        assert await saver.aget_tuple(config) is None

    async def test_the_store_refuses_what_its_read_model_would_dead_letter(
        self, saver: RunwireSaver
    ) -> None:
        thread = f"thread-{uuid.uuid4().hex[:12]}"
        prune = Event.create(CheckpointPruned(thread_id=thread, strategy="most"), producer="t")
        with pytest.raises(InvalidCheckpointEvent, match=r"payload\.strategy"):
            await saver.on_loop(saver.store.append([prune]))
        user = Event.create(UserMessage(parts=["hi"]), producer="t", run_id="r-1")
        with pytest.raises(ContractError, match="not a checkpoint event"):
            await saver.on_loop(saver.store.append([user]))

    async def test_an_event_refused_once_written_raises_not_returns(
        self, saver: RunwireSaver
    ) -> None:
        # One event id, two bodies: the read model keeps the first and dead-letters
        # the second; an append that returned would say it shows.
        config = generate_config(f"thread-{uuid.uuid4().hex[:12]}")
        await saver.aput(config, generate_checkpoint(), generate_metadata(), {})
        thread = config["configurable"]["thread_id"]
        first = Event.create(CheckpointPruned(thread_id=thread, strategy="delete"), producer="t")
        await saver.on_loop(saver.store.append([first]))
        assert await saver.aget_tuple(config) is None
        again = first.model_copy(
            update={"payload": CheckpointPruned(thread_id=thread, strategy="keep_latest")}
        )
        with pytest.raises(CheckpointRefusedError, match=first.event_id):
            await saver.on_loop(saver.store.append([again]))

    async def test_delete_for_runs_reaches_every_thread(self, saver: RunwireSaver) -> None:
        run, keep = str(uuid.uuid4()), str(uuid.uuid4())
        threads = [str(uuid.uuid4()) for _ in range(3)]
        for t in threads:
            await saver.aput(
                generate_config(t), generate_checkpoint(), generate_metadata(run_id=run), {}
            )
            await saver.aput(
                generate_config(t), generate_checkpoint(), generate_metadata(run_id=keep), {}
            )
        everywhere = [c async for c in saver.alist(None, filter={"run_id": run})]
        assert sorted(c.config["configurable"]["thread_id"] for c in everywhere) == sorted(threads)
        await saver.adelete_for_runs([run])
        for t in threads:
            left = [c async for c in saver.alist(generate_config(t))]
            assert [c.metadata.get("run_id") for c in left] == [keep]
        assert [c async for c in saver.alist(None, filter={"run_id": run})] == []

    async def test_copy_of_a_thread_bigger_than_one_event(self, saver: RunwireSaver) -> None:
        # Each put fits one event; together the thread's values do not, so the
        # copy must split them over several events rather than fail.
        source, target = str(uuid.uuid4()), str(uuid.uuid4())
        config = generate_config(source)
        blobs = [bytes([i]) * 300_000 for i in range(4)]
        for i, blob in enumerate(blobs):
            checkpoint = generate_checkpoint(channel_values={"blob": blob, "step": i})
            checkpoint["channel_versions"] = {"blob": f"{i + 1}", "step": f"{i + 1}"}
            config = await saver.aput(
                config,
                checkpoint,
                generate_metadata(step=i),
                {"blob": f"{i + 1}", "step": f"{i + 1}"},
            )
        await saver.acopy_thread(source, target)
        copied = [c async for c in saver.alist(generate_config(target))]
        assert [c.checkpoint["channel_values"]["blob"] for c in copied] == blobs[::-1]
        assert [c.metadata["step"] for c in copied] == [3, 2, 1, 0]
        original = [c async for c in saver.alist(generate_config(source))]
        assert [c.parent_config for c in copied] == [
            None
            if c.parent_config is None
            else {"configurable": {**c.parent_config["configurable"], "thread_id": target}}
            for c in original
        ]
