"""``RunwireSaver`` beside ``InMemorySaver`` where they once parted: ``DeltaChannel``
metadata, a list version put twice, a ``bytearray`` inside a list, reads naming text
no store holds, and a long chat continued by a new process.

Reads are from a fresh saver where it matters (nothing held from the writes);
``InMemorySaver`` given the same calls is the reference.
"""

from __future__ import annotations

import operator
import uuid
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    CheckpointTuple,
    create_checkpoint,
    empty_checkpoint,
)
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import START, StateGraph

from runwire.checkpoint import RunwireSaver
from runwire.checkpoint.inmem import InMemoryCheckpointStore
from runwire.checkpoint.values import CorruptCheckpointError, decode_values
from runwire.contract.events import CheckpointPut
from runwire.errors import InputError
from runwire.projections.checkpoints.fold import ValueRow
from runwire.settings import Settings


def conf(thread: str, ns: str = "", checkpoint_id: str | None = None) -> Any:
    c: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns}
    if checkpoint_id is not None:
        c["checkpoint_id"] = checkpoint_id
    return {"configurable": c}


def rendered(value: Any) -> Any:
    """``value`` with its types spelt out (``b"x" == bytearray(b"x")`` in Python)."""
    if isinstance(value, dict):
        return ("dict", [(rendered(k), rendered(v)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return (type(value).__name__, [rendered(v) for v in value])
    return (type(value).__name__, repr(value))


def view(t: CheckpointTuple | None) -> Any:
    if t is None:
        return None
    checkpoint: dict[str, Any] = dict(t.checkpoint)
    values: dict[str, Any] = checkpoint.pop("channel_values")
    return {
        "config": t.config,
        "parent": t.parent_config,
        "checkpoint": checkpoint,
        "values": rendered(dict(sorted(values.items()))),
        "metadata": t.metadata,
        "writes": [(task, channel, rendered(v)) for task, channel, v in t.pending_writes or []],
    }


class Both:
    """The same calls on RunwireSaver and InMemorySaver."""

    def __init__(self, saver: RunwireSaver) -> None:
        self.mine = saver
        self.ref = InMemorySaver()

    async def put(
        self, config: Any, values: dict[str, Any], versions: dict[str, Any], metadata: Any = None
    ) -> Any:
        checkpoint = create_checkpoint(empty_checkpoint(), None, 0)
        checkpoint["channel_values"] = dict(values)
        checkpoint["channel_versions"] = {**versions}
        meta: Any = metadata or {}
        a = await self.mine.aput(config, checkpoint, meta, versions)
        b = await self.ref.aput(config, checkpoint, meta, versions)
        assert a == b
        return a


# -- DeltaChannel: its counters are tuples in the metadata ---------------------------------


def extend(state: list[Any] | None, writes: Any) -> list[Any]:
    out = list(state or [])
    for w in writes:
        out += w
    return out


class Deltas(TypedDict, total=False):
    items: Annotated[list[Any], DeltaChannel(extend, snapshot_frequency=2)]
    log: Annotated[list[Any], operator.add]


def delta_graph(saver: BaseCheckpointSaver[Any]) -> Any:
    def add(state: Deltas) -> dict[str, Any]:
        n = len(state.get("items", []))
        return {"items": [[f"x{n}", (n, b"\x00")]], "log": [n]}

    builder = StateGraph(Deltas)
    builder.add_node("add", add)
    builder.add_edge(START, "add")
    return builder.compile(checkpointer=saver)


def snapshot(s: Any) -> Any:
    metadata = {k: v for k, v in (s.metadata or {}).items() if k != "thread_id"}
    return rendered(s.values), s.next, metadata


async def _delta_turns(saver: BaseCheckpointSaver[Any], thread: str) -> list[Any]:
    graph = delta_graph(saver)
    config: Any = {"configurable": {"thread_id": thread}}
    return [await graph.ainvoke({"items": [[f"in{turn}"]]}, config) for turn in range(4)]


async def _delta_history(saver: BaseCheckpointSaver[Any], thread: str) -> Any:
    graph = delta_graph(saver)
    config: Any = {"configurable": {"thread_id": thread}}
    state = snapshot(await graph.aget_state(config))
    history = [snapshot(s) async for s in graph.aget_state_history(config)]
    return state, history


async def test_a_delta_channel_graph_runs_and_reads_as_on_in_memory(settings: Settings) -> None:
    thread = f"delta-{uuid.uuid4().hex}"
    reference = InMemorySaver()
    want_states = await _delta_turns(reference, thread)
    async with RunwireSaver(settings=settings) as saver:
        got_states = await _delta_turns(saver, thread)
    assert rendered(got_states) == rendered(want_states)
    want = await _delta_history(reference, thread)
    async with RunwireSaver(settings=settings) as fresh:
        got = await _delta_history(fresh, thread)
        counted: list[Any] = [
            t.metadata["counters_since_delta_snapshot"]
            async for t in fresh.alist(conf(thread))
            if "counters_since_delta_snapshot" in t.metadata
        ]
    assert got == want
    # The counters, put as tuples, read back as the pairs LangGraph unpacks: lists,
    # as from InMemorySaver (and LangGraph's Postgres saver's jsonb).
    assert counted == [
        t.metadata["counters_since_delta_snapshot"]
        async for t in reference.alist(conf(thread))
        if "counters_since_delta_snapshot" in t.metadata
    ]
    assert counted
    assert all(type(pair) is list and len(pair) == 2 for c in counted for pair in c.values())


async def test_tuples_in_metadata_are_kept_as_arrays_and_what_json_cannot_hold_is_refused(
    settings: Settings,
) -> None:
    thread = f"tuples-{uuid.uuid4().hex}"
    metadata = {"source": "loop", "pair": (1, (2, "x")), "deep": {"c": [(0, 1)]}}
    async with RunwireSaver(settings=settings) as saver:
        both = Both(saver)
        config = await both.put(conf(thread), {}, {}, metadata)
        odds: list[tuple[Any, str]] = [
            ({"when": {1, 2}}, "metadata['when']"),
            ({"t": (1, {2})}, "metadata['t'][1]"),
            ({"k": {1: "int key"}}, "metadata['k']"),
            ({"t": ("a\x00",)}, "metadata['t'][0]"),
        ]
        for odd, field in odds:
            with pytest.raises(InputError) as refused:
                await saver.aput(
                    conf(thread), create_checkpoint(empty_checkpoint(), None, 1), odd, {}
                )
            assert refused.value.field == field
        # The checkpoint itself stays JSON as it is (InMemorySaver keeps its tuples).
        odd_checkpoint: Any = create_checkpoint(empty_checkpoint(), None, 1)
        odd_checkpoint["versions_seen"] = {"node": {"chan": ("1", "2")}}
        with pytest.raises(InputError):
            await saver.aput(conf(thread), odd_checkpoint, {}, {})
    async with RunwireSaver(settings=settings) as fresh:
        got = await fresh.aget_tuple(config)
        want = await both.ref.aget_tuple(config)
        assert view(got) == view(want)
        assert got is not None
        assert got.metadata["pair"] == [1, [2, "x"]]  # type: ignore[typeddict-item]
        listed = [t async for t in fresh.alist(conf(thread))]
        assert [view(t) for t in listed] == [view(want)], "nothing of the refused puts stored"


# -- a list version put twice --------------------------------------------------------------


async def test_a_delta_on_a_version_put_twice_reads_its_own_value(settings: Settings) -> None:
    """The second put of a version is not stored (the first wins, as in LangGraph's
    Postgres saver), so it must not become the base of the next delta."""
    thread = f"twice-{uuid.uuid4().hex}"
    async with RunwireSaver(settings=settings) as saver:
        both = Both(saver)
        await both.put(conf(thread), {"l": ["a"]}, {"l": "1"})
        await both.put(conf(thread), {"l": ["b", "c"]}, {"l": "1"})
        third = await both.put(conf(thread), {"l": ["b", "c", "d"]}, {"l": "2"})
        # The same with a version in between, and each put following the last.
        other = f"{thread}-2"
        c1 = await both.put(conf(other), {"l": ["a", "q"]}, {"l": "1"})
        c2 = await both.put(c1, {"l": ["x"]}, {"l": "2"})
        c3 = await both.put(c2, {"l": ["b", "c"]}, {"l": "1"})
        c4 = await both.put(c3, {"l": ["b", "c", "d"]}, {"l": "3"})
    async with RunwireSaver(settings=settings) as fresh:
        for config in (third, c4):
            got = await fresh.aget_tuple(config)
            assert got is not None
            assert got.checkpoint["channel_values"] == {"l": ["b", "c", "d"]}
            assert view(got) == view(await both.ref.aget_tuple(config))


async def test_a_minted_version_put_twice_is_no_base_either(settings: Settings) -> None:
    """Versions the saver makes are unique, but a caller may still put one twice."""
    thread = f"minted-{uuid.uuid4().hex}"
    async with RunwireSaver(settings=settings) as saver:
        v1 = saver.get_next_version(None, None)
        v2 = saver.get_next_version(v1, None)
        both = Both(saver)
        c1 = await both.put(conf(thread), {"l": ["a"]}, {"l": v1})
        c2 = await both.put(c1, {"l": ["b", "c"]}, {"l": v1})
        c3 = await both.put(c2, {"l": ["b", "c", "d"]}, {"l": v2})
    async with RunwireSaver(settings=settings) as fresh:
        got = await fresh.aget_tuple(c3)
        assert got is not None
        assert got.checkpoint["channel_values"] == {"l": ["b", "c", "d"]}


def test_a_link_keeping_more_items_than_its_base_holds_is_corrupt_not_cut() -> None:
    serde = JsonPlusSerializer()
    kind, data = serde.dumps_typed("a")
    base = ValueRow("t", "", "l", "1", None, data, items=((kind, len(data)),))
    kind_d, data_d = serde.dumps_typed("d")
    delta = ValueRow(
        "t", "", "l", "2", None, data_d, base="1", keep=2, items=((kind_d, len(data_d)),)
    )
    assert decode_values(serde, {"l": "1"}, [base]) == {"l": ["a"]}
    with pytest.raises(CorruptCheckpointError, match="keeps 2 items of version 1, which holds 1"):
        decode_values(serde, {"l": "2"}, [base, delta])


# -- a bytearray inside a list -------------------------------------------------------------


async def test_list_channels_holding_bytes_like_items_read_as_in_memory(
    settings: Settings,
) -> None:
    """The serializer gives a ``bytearray`` inside a list back as ``bytes`` (alone, as a
    ``bytearray``): a list channel must read as the serializer gives the whole list."""
    thread = f"bytes-{uuid.uuid4().hex}"
    steps: list[list[Any]] = [
        ["a", bytearray(b"c")],
        ["a", bytearray(b"c"), bytearray(b"d")],
        ["a", bytearray(b"c"), bytearray(b"d"), None, b"e"],
        ["a", "plain", "again"],
        ["a", "plain", "again", [bytearray(b"nested")]],
    ]
    async with RunwireSaver(settings=settings) as saver:
        both = Both(saver)
        configs: list[Any] = []
        config = conf(thread)
        for step, value in enumerate(steps):
            config = await both.put(config, {"l": value}, {"l": str(step + 1)})
            configs.append(config)
    async with RunwireSaver(settings=settings) as fresh:
        for config in configs:
            got = await fresh.aget_tuple(config)
            assert view(got) == view(await both.ref.aget_tuple(config))
        first = await fresh.aget_tuple(configs[1])
        assert first is not None
        assert [type(i) for i in first.checkpoint["channel_values"]["l"]] == [str, bytes, bytes]


# -- reads naming text no store can hold ---------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        {"source": "a\u0000b"},
        {"source": "\ud800"},
        {"\u0000": "x"},
        {"k\ud800": "x"},
        {"source": "input", "n": 1, "x": "\udfff"},
    ],
    ids=["nul-value", "surrogate-value", "nul-key", "surrogate-key", "mixed"],
)
async def test_a_filter_no_metadata_can_hold_matches_nothing(
    settings: Settings, query: Any
) -> None:
    thread = f"filter-{uuid.uuid4().hex}"
    async with RunwireSaver(settings=settings) as saver:
        both = Both(saver)
        await both.put(conf(thread), {}, {}, {"source": "input", "n": 1})
        for config in (conf(thread), None):
            got = [t.metadata async for t in saver.alist(config, filter=query)]
            want = [t.metadata async for t in both.ref.alist(config, filter=query)]
            assert got == want == []


@pytest.mark.parametrize("where", ["thread_id", "checkpoint_ns", "checkpoint_id"])
@pytest.mark.parametrize("odd", ["a\u0000b", "a\ud800b"], ids=["nul", "surrogate"])
async def test_a_config_no_checkpoint_can_have_reads_as_none(
    settings: Settings, where: str, odd: str
) -> None:
    thread = f"odd-{uuid.uuid4().hex}"
    async with RunwireSaver(settings=settings) as saver:
        both = Both(saver)
        stored = await both.put(conf(thread), {}, {}, {"source": "input", "run_id": "r1"})
        config: Any = {"configurable": {**stored["configurable"], where: odd}}
        for each in (saver, both.ref):
            assert (await each.aget_tuple(config)) is None, each
            assert [t async for t in each.alist(config)] == [], each
        # A put naming it (with a parent, so the saver would look up a delta base)
        # is refused as bad input, not failed by the store.
        listed = create_checkpoint(empty_checkpoint(), None, 1)
        listed["channel_values"] = {"l": ["a"]}
        with pytest.raises(InputError):
            await saver.aput(config, listed, {}, {"l": "1"})
        # A run id no metadata can hold names no thread to delete.
        await saver.adelete_for_runs(["r\u00001", "\ud800"])
        assert await saver.aget_tuple(conf(thread)) is not None


async def test_a_before_naming_text_no_store_holds_bounds_as_in_memory(
    settings: Settings,
) -> None:
    """``before`` names no checkpoint: it bounds them, and InMemorySaver lists the ids
    less than it in Python's order, NUL or surrogate and all."""
    thread = f"before-{uuid.uuid4().hex}"
    ids = ["a", "a!", "a\u0001", "b", "\ud7ff", "\ue000x", "\U0001f600"]
    async with RunwireSaver(settings=settings) as saver:
        ref = InMemorySaver()
        for step, checkpoint_id in enumerate(ids):
            checkpoint = create_checkpoint(empty_checkpoint(), None, step, id=checkpoint_id)
            for each in (saver, ref):
                await each.aput(conf(thread), checkpoint, {"step": step}, {})
        for bound in [
            "a\u0000z",
            "a\u0000",
            "\u0000",
            "a\ud800",
            "\ud800",
            "\ue000\udc00",
            "b\udfff",
        ]:
            before = conf(thread, "", bound)
            got = [t.checkpoint["id"] async for t in saver.alist(conf(thread), before=before)]
            want = [t.checkpoint["id"] async for t in ref.alist(conf(thread), before=before)]
            assert got == want, repr(bound)


# -- a long chat continued by a new process ------------------------------------------------


class Chat(TypedDict):
    messages: Annotated[list[Any], operator.add]


def chat_graph(saver: BaseCheckpointSaver[Any]) -> Any:
    def reply(state: Chat) -> dict[str, Any]:
        return {"messages": [f"reply {len(state['messages'])}"]}

    builder = StateGraph(Chat)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    return builder.compile(checkpointer=saver)


async def test_a_long_chat_goes_on_in_a_new_process(settings: Settings) -> None:
    """A chat whose history is over max_event_bytes in all: a new process (a restart,
    another worker) continues it, storing its new messages, not the whole list."""
    config: Any = {"configurable": {"thread_id": f"long-{uuid.uuid4().hex}"}}
    turn = "w" * 100_000
    async with RunwireSaver(settings=settings) as saver:
        graph = chat_graph(saver)
        for _ in range(10):
            await graph.ainvoke({"messages": [turn]}, config)
    async with RunwireSaver(settings=settings) as restarted:
        state = await chat_graph(restarted).ainvoke({"messages": ["one more"]}, config)
        again = await chat_graph(restarted).ainvoke({"messages": ["and more"]}, config)
    assert len(state["messages"]) == 22
    assert state["messages"][-2:] == ["one more", "reply 21"]
    assert again["messages"][-4:] == ["one more", "reply 21", "and more", "reply 23"]
    async with RunwireSaver(settings=settings) as fresh:
        latest = await fresh.aget_tuple(config)
    assert latest is not None
    assert latest.checkpoint["channel_values"]["messages"] == again["messages"]


async def test_a_new_saver_stores_deltas_on_what_the_store_holds() -> None:
    """On the twin: a second saver on the same store (no memory of its own) stores a
    delta on the stored parent's list, for versions it made and versions it was given."""
    store = InMemoryCheckpointStore()
    first = RunwireSaver(store=store)
    second = RunwireSaver(store=store)
    with first, second:
        config: Any = conf("t")
        items = [f"item {i}" * 100 for i in range(20)]
        for n in range(1, len(items) + 1):
            checkpoint = create_checkpoint(empty_checkpoint(), None, n)
            checkpoint["channel_values"] = {"l": items[:n]}
            checkpoint["channel_versions"] = {"l": str(n)}
            config = await first.aput(config, checkpoint, {}, {"l": str(n)})
        for saver, version in ((second, "21"), (second, second.get_next_version("21", None))):
            checkpoint = create_checkpoint(empty_checkpoint(), None, 21)
            items = [*items, f"new {version}"]
            checkpoint["channel_values"] = {"l": items}
            checkpoint["channel_versions"] = {"l": version}
            config = await saver.aput(config, checkpoint, {}, {"l": version})
            put = store.log[-1].payload
            assert isinstance(put, CheckpointPut)
            [entry] = put.values
            assert (entry["keep"], len(entry["items"])) == (len(items) - 1, 1), version
        with RunwireSaver(store=store) as third:
            got = await third.aget_tuple(config)
        assert got is not None
        assert got.checkpoint["channel_values"] == {"l": items}
