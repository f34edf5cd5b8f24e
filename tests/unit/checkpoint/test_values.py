"""Channel values as deltas: what is stored per version, and that every version reads back."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from runwire.checkpoint.values import (
    CorruptCheckpointError,
    ListMemory,
    decode_values,
    encode_values,
)
from runwire.contract.events import CheckpointPut, Event
from runwire.errors import DecodeError
from runwire.projections.checkpoints.fold import (
    InvalidCheckpointEvent,
    Put,
    ValueRow,
    op_of,
)
from runwire.projections.checkpoints.inmem import InMemoryCheckpoints

SERDE = JsonPlusSerializer()


def _rows(version: str, values: dict[str, object], memory: ListMemory) -> list[ValueRow]:
    encoded, remember = encode_values(
        SERDE, "t", "", values, dict.fromkeys(values, version), memory
    )
    remember()
    event = Event.create(
        CheckpointPut(
            thread_id="t",
            checkpoint_id=version,
            checkpoint={},
            values=encoded.entries,
            data=encoded.data,
        )
    )
    op = op_of(event)
    assert isinstance(op, Put)
    return list(op.values)


def test_a_growing_list_stores_its_new_items_and_every_version_reads_back() -> None:
    memory = ListMemory()
    a, b, c = HumanMessage("a", id="1"), AIMessage("b", id="2"), HumanMessage("c", id="3")
    versions = {
        "v1": [a, b],
        "v2": [a, b, c],
        "v3": [a, AIMessage("B!", id="2"), c],  # an edited message: keeps only what is equal
        "v4": [],
    }
    stored: list[ValueRow] = []
    for version, messages in versions.items():
        stored += _rows(version, {"messages": messages, "n": len(messages)}, memory)
    by_version = {r.version: r for r in stored if r.channel == "messages"}
    assert (by_version["v1"].base, len(by_version["v1"].items)) == (None, 2)
    assert (by_version["v2"].base, by_version["v2"].keep, len(by_version["v2"].items)) == (
        "v1",
        2,
        1,
    )
    assert (by_version["v3"].base, by_version["v3"].keep, len(by_version["v3"].items)) == (
        "v2",
        1,
        2,
    )
    assert by_version["v4"].items == ()
    for version, messages in versions.items():
        got = decode_values(SERDE, {"messages": version, "n": version}, stored)
        assert got == {"messages": messages, "n": len(messages)}


def test_a_missing_base_is_named_not_guessed() -> None:
    memory = ListMemory()
    stored = _rows("v1", {"m": [1, 2]}, memory) + _rows("v2", {"m": [1, 2, 3]}, memory)
    without_base = [r for r in stored if r.version != "v1"]
    with pytest.raises(CorruptCheckpointError, match="builds on version v1"):
        decode_values(SERDE, {"m": "v2"}, without_base)


def test_a_channel_without_a_value_is_left_out() -> None:
    rows = _rows("v1", {}, ListMemory())
    encoded, _ = encode_values(SERDE, "t", "", {}, {"gone": "v1"}, None)
    assert encoded.entries == [{"channel": "gone", "version": "v1", "type": "empty", "size": 0}]
    assert rows == []


def test_descriptors_that_do_not_match_the_bytes_are_refused() -> None:
    event = Event.create(
        CheckpointPut(
            thread_id="t",
            checkpoint_id="c",
            checkpoint={},
            values=[{"channel": "m", "version": "1", "type": "msgpack", "size": 5}],
            data=b"ab",
        )
    )
    with pytest.raises(InvalidCheckpointEvent, match=r"payload.values\[0\]"):
        op_of(event)


def test_the_twin_drops_a_duplicate_and_refuses_a_reused_id() -> None:
    model = InMemoryCheckpoints()
    first = Event.create(CheckpointPut(thread_id="t", checkpoint_id="c", checkpoint={}, data=b""))
    model.apply(first)
    model.apply(first)  # the same body again: nothing changes
    other = first.model_copy(
        update={"payload": CheckpointPut(thread_id="t", checkpoint_id="d", checkpoint={}, data=b"")}
    )
    with pytest.raises(DecodeError) as info:
        model.apply(other)
    assert info.value.reason == "conflicting_duplicate_event"
