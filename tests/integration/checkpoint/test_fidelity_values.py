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

from langgraph.checkpoint.base import create_checkpoint, empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Send
from pydantic import BaseModel

from runwire.checkpoint import RunwireSaver
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
