"""What checkpoint events do to the checkpoint read model (pure: no I/O).

Rules (the checkpoints projection's contract):
- The checkpoints topic is keyed by thread id: one thread's events come in
  the order they were written, and every event changes one thread only.
- A thread is ``(tenant, thread id)``, the tenant the event's envelope's:
  every event changes its own tenant's thread only (the projection keys
  every row by tenant first), so two tenants' threads of one id are two.
- ``checkpoint_put`` stores (or replaces) the checkpoint row at
  ``(thread, namespace, checkpoint id)`` and adds the channel values it
  carries; a value already stored at ``(thread, namespace, channel,
  version)`` is kept (a version names one value).
- ``checkpoint_writes`` adds a task's pending writes at ``(thread, namespace,
  checkpoint, task, idx)``: the first write of an index wins, except the
  special channels (negative idx: error, interrupt, ...) where the last does.
- ``checkpoint_thread_deleted`` and ``checkpoint_pruned`` with ``delete``
  remove everything of the thread; ``checkpoint_pruned`` with
  ``keep_latest`` keeps the newest checkpoint of each namespace, its writes
  and the values it (through delta bases) needs; ``checkpoint_runs_deleted``
  removes the checkpoints whose metadata ``run_id`` is listed, with their
  writes (values stay: other checkpoints may build on them).
- Rejected (dead-lettered, nothing changed): an event of another stream
  (``wrong_topic``), a payload whose descriptors do not match its bytes or an
  unknown prune strategy (``invalid_checkpoint``).
- A re-published event (same event_id) changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runwire.contract.events import (
    CheckpointPruned,
    CheckpointPut,
    CheckpointRunsDeleted,
    CheckpointThreadDeleted,
    CheckpointWrites,
    Event,
)
from runwire.errors import RunwireError

__all__ = [
    "STRATEGIES",
    "CheckpointRow",
    "DeleteRuns",
    "DeleteThread",
    "InvalidCheckpointEvent",
    "Op",
    "Prune",
    "Put",
    "PutWrites",
    "ValueRow",
    "WriteRow",
    "op_of",
]

STRATEGIES = ("keep_latest", "delete")


class InvalidCheckpointEvent(RunwireError):
    """A checkpoint event whose payload breaks its own description."""

    reason = "invalid_checkpoint"


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    checkpoint: dict[str, Any]
    """The checkpoint without its channel values."""
    metadata: dict[str, Any]

    @property
    def run_id(self) -> str | None:
        run_id = self.metadata.get("run_id")
        return run_id if isinstance(run_id, str) else None


@dataclass(frozen=True, slots=True)
class ValueRow:
    """One version of one channel: a whole value, or a delta of an earlier list version."""

    thread_id: str
    checkpoint_ns: str
    channel: str
    version: str
    type: str | None
    """The serializer's tag of a whole value; None for a list stored as items."""
    data: bytes
    base: str | None = None
    """A list's base version (same thread, namespace and channel), if it builds on one."""
    keep: int = 0
    """How many leading items of the base the list keeps before its own."""
    items: tuple[tuple[str, int], ...] = ()
    """A list's own items: (serializer tag, size in ``data``) each."""


@dataclass(frozen=True, slots=True)
class WriteRow:
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    task_id: str
    task_path: str
    idx: int
    channel: str
    type: str
    data: bytes

    @property
    def last_wins(self) -> bool:
        """Special channels (negative idx) are overwritten; others keep their first write."""
        return self.idx < 0


@dataclass(frozen=True, slots=True)
class Put:
    checkpoint: CheckpointRow
    values: tuple[ValueRow, ...]


@dataclass(frozen=True, slots=True)
class PutWrites:
    writes: tuple[WriteRow, ...]


@dataclass(frozen=True, slots=True)
class DeleteThread:
    thread_id: str


@dataclass(frozen=True, slots=True)
class DeleteRuns:
    thread_id: str
    run_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Prune:
    thread_id: str
    keep_latest: bool


Op = Put | PutWrites | DeleteThread | DeleteRuns | Prune


def _int(entry: dict[str, Any], name: str, where: str) -> int:
    value = entry.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidCheckpointEvent(f"{where}.{name} must be a non-negative integer")
    return value


def _str(entry: dict[str, Any], name: str, where: str) -> str:
    value = entry.get(name)
    if not isinstance(value, str):
        raise InvalidCheckpointEvent(f"{where}.{name} must be a string")
    return value


class _Cursor:
    """Hands out consecutive slices of a payload's ``data``."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def take(self, size: int, where: str) -> bytes:
        end = self._at + size
        if end > len(self._data):
            raise InvalidCheckpointEvent(f"{where}: data holds {len(self._data)} bytes, not {end}")
        chunk = self._data[self._at : end]
        self._at = end
        return chunk

    def done(self, where: str) -> None:
        if self._at != len(self._data):
            raise InvalidCheckpointEvent(
                f"{where}: {len(self._data) - self._at} bytes of data described by nothing"
            )


def _entries(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        raise InvalidCheckpointEvent(f"{where} must be a JSON array of objects")
    return value


def _values(p: CheckpointPut) -> tuple[ValueRow, ...]:
    cursor = _Cursor(p.data)
    rows: list[ValueRow] = []
    for i, entry in enumerate(_entries(p.values, "payload.values")):
        where = f"payload.values[{i}]"
        channel, version = _str(entry, "channel", where), _str(entry, "version", where)
        if "items" in entry:
            items_raw = entry.get("items")
            if not isinstance(items_raw, list):
                raise InvalidCheckpointEvent(f"{where}.items must be an array")
            items: list[tuple[str, int]] = []
            chunks: list[bytes] = []
            for j, item in enumerate(items_raw):
                if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
                    raise InvalidCheckpointEvent(f"{where}.items[{j}] must be [type, size]")
                size = _int({"size": item[1]}, "size", f"{where}.items[{j}]")
                items.append((item[0], size))
                chunks.append(cursor.take(size, f"{where}.items[{j}]"))
            base = entry.get("base")
            keep = _int(entry, "keep", where)
            if not (isinstance(base, str) or (base is None and keep == 0)):
                raise InvalidCheckpointEvent(
                    f"{where}.base must be a version (or null with keep 0)"
                )
            rows.append(
                ValueRow(
                    thread_id=p.thread_id,
                    checkpoint_ns=p.checkpoint_ns,
                    channel=channel,
                    version=version,
                    type=None,
                    data=b"".join(chunks),
                    base=base,
                    keep=keep,
                    items=tuple(items),
                )
            )
        else:
            rows.append(
                ValueRow(
                    thread_id=p.thread_id,
                    checkpoint_ns=p.checkpoint_ns,
                    channel=channel,
                    version=version,
                    type=_str(entry, "type", where),
                    data=cursor.take(_int(entry, "size", where), where),
                )
            )
    cursor.done("payload.data")
    return tuple(rows)


def _writes(p: CheckpointWrites) -> tuple[WriteRow, ...]:
    cursor = _Cursor(p.data)
    rows: list[WriteRow] = []
    for i, entry in enumerate(_entries(p.writes, "payload.writes")):
        where = f"payload.writes[{i}]"
        idx = entry.get("idx")
        if not isinstance(idx, int) or isinstance(idx, bool):
            raise InvalidCheckpointEvent(f"{where}.idx must be an integer")
        rows.append(
            WriteRow(
                thread_id=p.thread_id,
                checkpoint_ns=p.checkpoint_ns,
                checkpoint_id=p.checkpoint_id,
                task_id=p.task_id,
                task_path=p.task_path,
                idx=idx,
                channel=_str(entry, "channel", where),
                type=_str(entry, "type", where),
                data=cursor.take(_int(entry, "size", where), where),
            )
        )
    cursor.done("payload.data")
    return tuple(rows)


def op_of(event: Event) -> Op:
    """What ``event`` does; :class:`InvalidCheckpointEvent` when its payload is inconsistent
    (``ValueError`` for an event of another stream)."""
    p = event.payload
    if isinstance(p, CheckpointPut):
        return Put(
            CheckpointRow(
                thread_id=p.thread_id,
                checkpoint_ns=p.checkpoint_ns,
                checkpoint_id=p.checkpoint_id,
                parent_checkpoint_id=p.parent_checkpoint_id,
                checkpoint=p.checkpoint,
                metadata=p.metadata,
            ),
            _values(p),
        )
    if isinstance(p, CheckpointWrites):
        return PutWrites(_writes(p))
    if isinstance(p, CheckpointThreadDeleted):
        return DeleteThread(p.thread_id)
    if isinstance(p, CheckpointRunsDeleted):
        return DeleteRuns(p.thread_id, tuple(p.run_ids))
    if isinstance(p, CheckpointPruned):
        if p.strategy not in STRATEGIES:
            raise InvalidCheckpointEvent(
                f"payload.strategy {p.strategy!r} is none of {', '.join(STRATEGIES)}"
            )
        return Prune(p.thread_id, keep_latest=p.strategy == "keep_latest")
    raise ValueError(f"{event.type.value} is not a checkpoint event")


def needed_values(
    kept: Sequence[CheckpointRow], values: Sequence[ValueRow]
) -> set[tuple[str, str, str]]:
    """``(namespace, channel, version)`` of the values ``kept`` checkpoints need, bases included."""
    by_key = {(v.checkpoint_ns, v.channel, v.version): v for v in values}
    need: set[tuple[str, str, str]] = set()
    todo = [
        (c.checkpoint_ns, channel, str(version))
        for c in kept
        for channel, version in dict(c.checkpoint.get("channel_versions") or {}).items()
    ]
    while todo:
        key = todo.pop()
        if key in need:
            continue
        need.add(key)
        row = by_key.get(key)
        if row is not None and row.base is not None:
            todo.append((key[0], key[1], row.base))
    return need
