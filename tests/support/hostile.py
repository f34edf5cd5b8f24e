"""Hostile records for runwire's topics, made without runwire's writer: hypothesis
strategies over the ``.avsc`` files, fastavro for the bodies, aiokafka's own
murmur2 partitioner for placement, and every malformed kind a producer can write.

Contract:
- :func:`avro_values` is a strategy of any value an Avro schema accepts
  (random strings include NUL and control characters, longs span the whole
  range); :func:`event_records` draws whole event records of a released
  ``.avsc``, with envelope ids and JSON fields mostly plausible (so many pass
  the event rules) and sometimes not.
- :func:`frame` is Avro single-object encoding (``C3 01`` + the fingerprint
  fastavro computes + the body): what schemas/README.md specifies, written
  from the schema alone.
- A :class:`Hostile` is one record to write (topic, partition, key, value,
  headers) with its category and the reason every consumer reading it must
  dead-letter it with (``expect``); ``refused`` where all must refuse it
  for one reason not known beforehand; neither where the record is well
  framed and placed, and its readers must merely agree (apply it, or refuse
  it for the same decode reason).
- :func:`hostile_batches` draws a batch with every category; categories
  that need an earlier record (a reused event id) refer to records of the
  same batch, written in order.
"""

from __future__ import annotations

import io
import json
import string
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from aiokafka.partitioner import DefaultPartitioner
from fastavro import parse_schema, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form
from hypothesis import strategies as st

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
MAGIC = b"\xc3\x01"
JSON_FIELDS_OBJECT = {"input", "metadata", "policy"}
"""JSON text fields whose value must be an object (the README's rule)."""

CATEGORIES = (
    "repaired",  # a random schema-valid record, right key and partition
    "unrepaired",  # the same with a random key or partition
    "null_value",
    "bad_magic",
    "truncated",
    "unknown_fingerprint",
    "trailing_bytes",
    "wrong_key",
    "wrong_partition",
    "conflicting_duplicate",
    "oversize",
    "lone_surrogate",  # JSON text escaping a lone surrogate, as JavaScript writes one
    "wrong_topic",  # a session event on the run-events topic, keyed and placed as a run's
)


@dataclass(frozen=True)
class EventSchema:
    type: str
    stream: str  # run | session | memory
    schema: Any
    header: bytes  # C3 01 + fingerprint


@cache
def event_schemas() -> dict[str, EventSchema]:
    """The newest released schema of every type, from the .avsc files."""
    newest: dict[str, tuple[int, Path]] = {}
    for path in SCHEMAS.glob("*.avsc"):
        kind, version = path.name.removesuffix(".avsc").rsplit(".v", 1)
        if int(version) > newest.get(kind, (0, path))[0]:
            newest[kind] = (int(version), path)
    out = {}
    for kind, (_, path) in sorted(newest.items()):
        schema = parse_schema(json.loads(path.read_text()), _write_hint=False)
        fp = fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO")
        stream = "memory" if kind.startswith("memory_") else "run"
        stream = "session" if kind.startswith("session_") else stream
        out[kind] = EventSchema(kind, stream, schema, MAGIC + bytes.fromhex(fp))
    return out


def frame(es: EventSchema, record: Mapping[str, Any]) -> bytes:
    body = io.BytesIO()
    schemaless_writer(body, es.schema, dict(record))
    return es.header + body.getvalue()


# -- values from a schema -------------------------------------------------------------

ANY_TEXT = st.text(max_size=40)  # any code point but surrogates: NUL and controls too
IDS = st.sampled_from(["h-run-1", "h-run-2", "h-run-3", "h-sess-1", "h-sess-2", "ü-ß", "a b"])
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(string.printable, max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def avro_values(schema: Any) -> st.SearchStrategy[Any]:
    """Any value of the (parsed) Avro ``schema``."""
    if isinstance(schema, list):
        return st.one_of(*[avro_values(branch) for branch in schema])
    if isinstance(schema, str):
        return _primitive(schema)
    kind = schema["type"]
    if kind == "record":
        return st.fixed_dictionaries({f["name"]: avro_values(f["type"]) for f in schema["fields"]})
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(avro_values(schema["items"]), max_size=3)
    if kind == "map":
        return st.dictionaries(ANY_TEXT, avro_values(schema["values"]), max_size=3)
    if kind in ("string", "long", "int", "boolean", "bytes", "null", "double", "float"):
        return _primitive(kind)
    raise ValueError(f"no strategy for Avro type {kind!r}")


def _primitive(kind: str) -> st.SearchStrategy[Any]:
    return {
        "null": st.none(),
        "string": ANY_TEXT,
        "boolean": st.booleans(),
        "int": st.integers(-(2**31), 2**31 - 1),
        "long": st.integers(-(2**63), 2**63 - 1),
        "float": st.floats(width=32),
        "double": st.floats(),
        "bytes": st.binary(max_size=20),
    }[kind]


def _no_nul(text: str) -> bool:
    return "\x00" not in text


def _mostly(
    plausible: st.SearchStrategy[Any], wild: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    return st.one_of(plausible, plausible, plausible, wild)


@st.composite
def event_records(draw: st.DrawFn, es: EventSchema) -> dict[str, Any]:
    """A record of ``es``'s schema: any value, ids and JSON fields mostly plausible."""
    record: dict[str, Any] = draw(avro_values(es.schema))
    record["event_id"] = draw(_mostly(st.uuids().map(str), ANY_TEXT))
    record["type"] = draw(_mostly(st.just(es.type), ANY_TEXT))
    now = 1_780_000_000_000
    record["occurred_at"] = draw(
        _mostly(st.integers(now - 10**9, now + 10**9), st.integers(-(2**63), 2**63 - 1))
    )
    record["producer"] = draw(_mostly(st.just("hostile"), ANY_TEXT))
    for name in ("run_id", "session_id", "agent_id", "user_id", "turn_id", "causation_id"):
        record[name] = draw(_mostly(IDS, st.none() | ANY_TEXT))
    record["tenant"] = draw(_mostly(st.none(), ANY_TEXT))
    payload = record["payload"]
    for f in es.schema["fields"][-1]["type"]["fields"]:
        if f.get("contentType") == "application/json":
            objects = st.dictionaries(st.text(max_size=5), JSON_VALUES, max_size=3)
            wanted = objects if f["name"] in JSON_FIELDS_OBJECT else JSON_VALUES
            payload[f["name"]] = draw(_mostly(wanted.map(json.dumps), ANY_TEXT))
        elif f["name"] in ("owner", "key", "id", "tool_use_id", "name"):
            payload[f["name"]] = draw(_mostly(IDS, ANY_TEXT))
        elif f["name"].endswith("_tokens"):
            # Any Avro long: counts beyond what a model reports are refused by all.
            payload[f["name"]] = draw(st.integers(-(2**63), 2**63 - 1))
    if es.stream == "run" and record["run_id"] is None:
        record["run_id"] = draw(IDS)  # mostly routable; a null one is another test
    return record


# -- keys and placement ---------------------------------------------------------------

PARTITIONER = DefaultPartitioner()  # aiokafka's murmur2, Java's; not runwire's


def routing_key(stream: str, record: Mapping[str, Any]) -> bytes:
    """The README's key of ``record``: run id, session id, or the memory address."""
    if stream == "run":
        return str(record["run_id"]).encode()
    if stream == "session":
        return str(record["session_id"]).encode()
    p = record["payload"]
    return json.dumps(
        [p["scope"], p["owner"], p["key"]], ensure_ascii=False, separators=(",", ":")
    ).encode()


def placed(key: bytes, partitions: Sequence[int]) -> int:
    return int(PARTITIONER(key, list(partitions), list(partitions)))


@dataclass
class Hostile:
    """One record to write, and what every consumer reading it must do."""

    category: str
    stream: str
    key: bytes | None
    value: bytes | None
    partition: int
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    expect: str | None = None
    event_id: str | None = None
    refused: bool = False
    """Must be refused by every reader for one reason (the envelope's, or a decode
    reason its body earns first) though which one is not known beforehand."""

    def __repr__(self) -> str:
        # Short: hypothesis reprs what it draws, and an oversize value is a megabyte.
        size = "null" if self.value is None else f"{len(self.value)} bytes"
        value = self.value if self.value is None or len(self.value) <= 64 else size
        return (
            f"Hostile({self.category}, {self.stream}[{self.partition}], key={self.key!r:.60}, "
            f"value={value!r}, expect={self.expect}, refused={self.refused})"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))  # what hypothesis' printer uses before a dataclass's fields


Partitions = Mapping[str, Sequence[int]]
"""The partitions of each stream's topic."""


def _headers(es: EventSchema, record: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    return [
        ("runwire-type", es.type.encode()),
        ("runwire-event-id", str(record["event_id"]).encode()),
        ("runwire-schema", es.header[2:].hex().encode()),
    ]


def good_record(
    es: EventSchema, record: dict[str, Any], parts: Partitions, category: str
) -> Hostile:
    key = routing_key(es.stream, record)
    return Hostile(
        category,
        es.stream,
        key,
        frame(es, record),
        placed(key, parts[es.stream]),
        _headers(es, record),
        None,
        str(record["event_id"]),
    )


def plausible_run_event(
    run_id: str,
    text: str,
    event_id: uuid.UUID,
    *,
    kind: str = "user_message",
    causation_id: str | None = None,
) -> tuple[EventSchema, dict[str, Any]]:
    """A well-formed record of a run: a user message saying ``text``, or a
    ``run_started`` (``kind``)."""
    es = event_schemas()[kind]
    payload: dict[str, Any] = (
        {"parts": [text]}
        if kind == "user_message"
        else {"agent_id": "assistant", "parent_run_id": None, "labels": {}}
    )
    record = {
        "event_id": str(event_id),
        "run_id": run_id,
        "session_id": "h-sess-1",
        "agent_id": "assistant",
        "turn_id": None,
        "user_id": None,
        "tenant": None,
        "type": kind,
        "occurred_at": 1_780_000_000_000,
        "producer": "hostile",
        "causation_id": causation_id,
        "labels": {},
        "payload": payload,
    }
    return es, record


@st.composite
def hostile_records(draw: st.DrawFn, category: str, parts: Partitions) -> list[Hostile]:
    """One or two records of ``category`` (two where the second reuses the first)."""
    types = sorted(event_schemas())
    es = event_schemas()[draw(st.sampled_from(types))]
    record = draw(event_records(es))
    good = good_record(es, record, parts, category)
    n = len(parts[es.stream])
    if category == "repaired":
        return [good]
    if category == "unrepaired":
        key = draw(st.one_of(st.just(good.key), st.binary(min_size=1, max_size=12)))
        partition = draw(st.integers(0, n - 1))
        if key == good.key and partition == good.partition:
            partition = (partition + 1) % n
        # The body is decoded before the envelope is checked: a random body may be
        # refused first (invalid_event), so only "refused alike" is known.
        return [replace(good, key=key, partition=partition, refused=True)]
    if category == "null_value":
        if es.stream == "memory":  # a tombstone without runwire's headers
            return [replace(good, value=None, headers=[], expect="invalid_event")]
        return [replace(good, value=None, expect="truncated")]
    # The body kinds: a plausible run event, so only the damage decides.
    run_id = f"h-{category}-{draw(st.integers(0, 10**6))}"
    text = "x" * 1_000_000 if category == "oversize" else draw(ANY_TEXT.filter(_no_nul))
    es, record = plausible_run_event(run_id, text, draw(st.uuids()))
    good = good_record(es, record, parts, category)
    value: bytes = good.value or b""
    elsewhere = f"{run_id}-elsewhere".encode()
    miskeyed = replace(good, key=elsewhere, partition=placed(elsewhere, parts["run"]))
    if category == "bad_magic":
        first = draw(st.integers(1, 255).filter(lambda b: b != 0xC3))
        return [replace(good, value=bytes([first]) + value[1:], expect="bad_magic")]
    if category == "truncated":
        cut = draw(st.integers(0, len(value) - 1))
        if cut < len(MAGIC) + 8:  # within the header
            return [replace(good, value=value[:cut], expect="truncated")]
        # A body cut inside a string reads as a short string (then bad UTF-8 or a
        # missing field): ``truncated`` or ``invalid_body``, alike for every reader.
        return [replace(good, value=value[:cut], refused=True)]
    if category == "unknown_fingerprint":
        fp = draw(st.binary(min_size=8, max_size=8).filter(lambda b: b != value[2:10]))
        return [replace(good, value=MAGIC + fp + value[10:], expect="unknown_fingerprint")]
    if category == "trailing_bytes":
        extra = draw(st.binary(min_size=1, max_size=8))
        return [replace(good, value=value + extra, expect="invalid_body")]
    if category == "wrong_key":
        return [replace(miskeyed, expect="key_mismatch")]
    if category == "wrong_partition":
        n = len(parts["run"])
        partition = (good.partition + draw(st.integers(1, n - 1))) % n
        return [replace(good, partition=partition, expect="wrong_partition")]
    if category == "conflicting_duplicate":
        es2, again = plausible_run_event(run_id, "another body", draw(st.uuids()))
        again["event_id"] = record["event_id"]
        second = good_record(es2, again, parts, category)
        return [
            replace(good, category="duplicate_original"),
            replace(second, expect="conflicting_duplicate_event"),
        ]
    if category == "lone_surrogate":
        # A tool result whose JSON text holds "\ud800" (JSON.stringify's spelling of a
        # lone surrogate): no UTF-8 text, so no value runwire keeps or writes on.
        content = draw(st.sampled_from(['"\\ud800"', '{"\\udfff": 1}', '["a\\udc80b"]']))
        record = {
            **record,
            "type": "tool_result",
            "payload": {"tool_use_id": "t1", "content": content, "is_error": False},
        }
        poisoned = good_record(event_schemas()["tool_result"], record, parts, category)
        return [replace(poisoned, expect="invalid_event")]
    if category == "wrong_topic":
        # Its session id is the run's: key and partition are right for the run-events
        # topic, only the stream is not the one that topic carries.
        record = {**record, "type": "session_cleared", "session_id": run_id, "payload": {}}
        cleared = good_record(event_schemas()["session_cleared"], record, parts, category)
        key = run_id.encode()
        return [
            replace(
                cleared,
                stream="run",
                key=key,
                partition=placed(key, parts["run"]),
                expect="wrong_topic",
            )
        ]
    if category == "oversize":
        # Over max_event_bytes (900,000) and over the dead-letter topic's limit: readers
        # take what the broker took; a dead letter of it is a truncated copy.
        return [replace(miskeyed, expect="key_mismatch") if draw(st.booleans()) else good]
    raise ValueError(f"unknown category {category!r}")


@st.composite
def hostile_batches(draw: st.DrawFn, parts: Partitions, extra: int = 8) -> list[Hostile]:
    """Every category once, in a drawn order, then ``extra`` draws of any category;
    flattened in write order."""
    order = [*draw(st.permutations(CATEGORIES))]
    order += draw(st.lists(st.sampled_from(CATEGORIES), min_size=extra, max_size=extra))
    return [h for category in order for h in draw(hostile_records(category, parts))]
