"""``RunwireSaver`` gives back what LangGraph put, beside ``InMemorySaver``.

Reads are from a fresh saver (nothing held from the writes); ``InMemorySaver``
given the same calls is the reference: values of every type the serializer
takes, pending writes, metadata (floats stay floats: Postgres ``jsonb`` drops
exponents, so ``1e308`` must not come back as a 309-digit int).
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import pytest
from langgraph.checkpoint.base import create_checkpoint, empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Send
from pydantic import BaseModel

from runwire.checkpoint import RunwireSaver
from runwire.errors import InputError
from runwire.settings import Settings


class Inner(BaseModel):
    when: datetime.datetime
    tags: list[str]


class Outer(BaseModel):
    inner: Inner
    n: int


VALUES: dict[str, Any] = {
    "bytes": b"\x00\xffab",
    "aware": datetime.datetime(
        2024, 1, 2, 3, 4, 5, 6, datetime.timezone(datetime.timedelta(hours=5))
    ),
    "naive": datetime.datetime(2024, 1, 2),
    "td": datetime.timedelta(days=1, microseconds=3),
    "set": {1, 2, 3},
    "frozenset": frozenset({"a"}),
    "tuple": (1, (2, 3), "x"),
    "model": Outer(inner=Inner(when=datetime.datetime(2020, 1, 1), tags=["a"]), n=2),
    "send": Send("node", {"arg": 1}),
    "sends": [Send("a", 1), Send("b", {"x": (1, 2)})],
    "large": "z" * 300_000,
    "floats": [{"i": i, "neg_zero": -0.0, "big": 1e308} for i in range(3)],
    "uuid": uuid.UUID(int=5),
    "mixed": [[1, {2, 3}], (4,), b"q"],
    "text": "\x00 \U0001f600 \u2028",
    "none": None,
}
METADATA: Any = {
    "source": "input",
    "step": -1,
    "a.b": 1,
    "": "empty key",
    "ünï": [1, {"x": None}],
    "floats": [1e308, 0.1, 5e-324, 1.0, -2.5e-7],
    "big": 2**63 - 1,
}
WRITES = [("chan", VALUES["model"]), ("__error__", ValueError("boom")), ("s", Send("n", (1,)))]


def rendered(value: Any) -> tuple[str, str]:
    return type(value).__name__, repr(value)


async def test_values_writes_and_metadata_come_back_as_in_memory(settings: Settings) -> None:
    reference = InMemorySaver()
    thread_id = f"thréad-😀-{uuid.uuid4().hex}"
    puts: dict[str, tuple[Any, Any]] = {}
    async with RunwireSaver(settings=settings) as saver:
        for ns in ("", "outer:1", "outer:1|inner:2"):
            config: Any = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns}}
            checkpoint = create_checkpoint(empty_checkpoint(), None, 1)
            checkpoint["channel_values"] = dict(VALUES)
            versions: Any = dict.fromkeys(VALUES, f"{1:032}.0")
            checkpoint["channel_versions"] = versions
            mine = await saver.aput(config, checkpoint, METADATA, versions)
            theirs = await reference.aput(config, checkpoint, METADATA, versions)
            await saver.aput_writes(mine, WRITES, "task-1", "path")
            await reference.aput_writes(theirs, WRITES, "task-1", "path")
            puts[ns] = (mine, theirs)

    async with RunwireSaver(settings=settings) as fresh:
        for ns, (mine, theirs) in puts.items():
            got = await fresh.aget_tuple(mine)
            want = await reference.aget_tuple(theirs)
            assert got is not None
            assert want is not None
            assert got.pending_writes is not None
            assert want.pending_writes is not None
            assert got.config == want.config
            values, expected = got.checkpoint["channel_values"], want.checkpoint["channel_values"]
            assert {k: rendered(v) for k, v in values.items()} == {
                k: rendered(v) for k, v in expected.items()
            }, ns
            assert got.metadata == want.metadata
            floats: Any = got.metadata.get("floats")
            assert [rendered(f) for f in floats] == [rendered(f) for f in METADATA["floats"]]
            assert [(t, c, rendered(v)) for t, c, v in got.pending_writes] == [
                (t, c, rendered(v)) for t, c, v in want.pending_writes
            ]
        listed = [t async for t in fresh.alist(None, filter={"floats": METADATA["floats"]})]
        assert len(listed) == 3


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"k": value}
    return value


async def test_text_no_store_holds_is_refused_naming_it(settings: Settings) -> None:
    """Each of these was written, then dropped by the projection (the checkpoint or the
    writes never readable) or refused with an error naming no field."""
    thread_id = f"t-{uuid.uuid4().hex}"
    base: Any = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    async with RunwireSaver(settings=settings) as saver:
        kept = await saver.aput(base, create_checkpoint(empty_checkpoint(), None, 1), {}, {})
        puts: list[tuple[str, str, Any, Any]] = [
            ("channel NUL", "checkpoint['channel_versions']", "", {"ch\x00": 1}),
            ("metadata key NUL", "metadata", "", {"\x00k": 1}),
            ("namespace NUL", "checkpoint_ns", "a\x00b", {}),
            ("namespace surrogate", "checkpoint_ns", "a:\ud800", {}),
            ("metadata too deep", "metadata['x']" + "['k']" * 199, "", {"x": _nested(200)}),
        ]
        for case, field, ns, odd in puts:
            checkpoint = create_checkpoint(empty_checkpoint(), None, 2)
            metadata: Any = {}
            if field == "checkpoint['channel_versions']":
                checkpoint["channel_values"] = dict.fromkeys(odd, 1)
                checkpoint["channel_versions"] = dict.fromkeys(odd, f"{2:032}.0")
            else:
                metadata = odd
            config: Any = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns}}
            with pytest.raises(InputError) as refused:
                await saver.aput(config, checkpoint, metadata, checkpoint["channel_versions"])
            assert refused.value.field == field, case
        writes: list[tuple[str, str, str, str]] = [
            ("ch\x00", "task", "", "writes[0] (channel 'ch\\x00')"),
            ("ch", "task\x00", "", "task_id"),
            ("ch", "task", "path\ud800", "task_path"),
        ]
        for channel, task_id, task_path, field in writes:
            with pytest.raises(InputError) as refused:
                await saver.aput_writes(kept, [(channel, 1)], task_id, task_path)
            assert refused.value.field == field
    async with RunwireSaver(settings=settings) as fresh:
        listed = [t async for t in fresh.alist({"configurable": {"thread_id": thread_id}})]
        assert [t.config for t in listed] == [kept], "nothing of the refused calls was written"
        assert listed[0].pending_writes == []


async def test_list_filters_and_limits_as_in_memory(settings: Settings) -> None:
    """Postgres containment matched a list or object holding more, never a missing key
    for None nor 1 for True, and a negative limit failed in Postgres."""
    reference = InMemorySaver()
    thread_id = f"f-{uuid.uuid4().hex}"
    metadatas: list[Any] = [
        {"step": 1, "tags": ["a", "b"], "info": {"x": 1, "y": 2}, "n": None, "who": "x"},
        {"step": 2, "tags": ["a"], "info": {"x": 1}, "who": "x"},
        {"step": 3, "flag": True, "who": "y"},
    ]
    filters: list[Any] = [
        {"tags": ["a"]},
        {"info": {"x": 1}},
        {"n": None},
        {"missing": None},
        {"step": 1.0},
        {"step": True},
        {"flag": 1, "who": "y"},
        {"who": "x"},
        {},
    ]
    async with RunwireSaver(settings=settings) as saver:
        for each in (saver, reference):
            config: Any = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
            for i, metadata in enumerate(metadatas):
                config = await each.aput(
                    config, create_checkpoint(empty_checkpoint(), None, i), metadata, {}
                )
    thread: Any = {"configurable": {"thread_id": thread_id}}
    async with RunwireSaver(settings=settings) as fresh:
        for query in filters:
            for limit in (None, 1, 0, -1):
                got = [t.metadata async for t in fresh.alist(thread, filter=query, limit=limit)]
                want = [
                    t.metadata async for t in reference.alist(thread, filter=query, limit=limit)
                ]
                assert got == want, (query, limit)
