"""Channel values and pending writes <-> the bytes and descriptors of checkpoint events.

Contract:
- Every value and write is the saver's serializer's ``(type, bytes)``
  (LangGraph's ``dumps_typed``), kept byte for byte.
- A channel whose value is a plain ``list`` (a ``messages`` channel) is stored
  as items, each serialized on its own; when this process wrote a version of
  the same channel of the same thread and namespace before, only what changed
  is stored: the number of leading items kept from that version (``base``)
  and the items after them. A growing list therefore costs its new items per
  step, not its whole length. Any other value is stored whole.
- Decoding rebuilds exactly the value the serializer would give for the
  whole list: the kept items of the base (itself rebuilt the same way), then
  the appended ones.
- A channel named in ``new_versions`` but absent from the checkpoint's
  values is stored as ``empty`` and left out when read (as LangGraph's own
  savers do).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol

from runwire.errors import ContractError
from runwire.projections.checkpoints.fold import ValueRow, WriteRow

__all__ = [
    "EMPTY",
    "CorruptCheckpointError",
    "Encoded",
    "ListMemory",
    "decode_values",
    "decode_writes",
    "encode_values",
    "encode_writes",
]

EMPTY = "empty"
_DIGEST_BYTES = 16


class CorruptCheckpointError(ContractError):
    """Stored values cannot be rebuilt (a delta whose base is gone)."""


@dataclass(frozen=True, slots=True)
class Encoded:
    """Descriptors (JSON) and the bytes they describe, in order."""

    entries: list[dict[str, Any]]
    data: bytes


def _digest(kind: str, data: bytes) -> bytes:
    return hashlib.blake2b(kind.encode() + b"\0" + data, digest_size=_DIGEST_BYTES).digest()


class ListMemory:
    """What this process last wrote for each list channel: the base of the next delta.

    Bounded (least recently used entries go); a miss only means a whole value.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._last: OrderedDict[tuple[str, str, str], tuple[str, list[bytes]]] = OrderedDict()

    def get(self, key: tuple[str, str, str]) -> tuple[str, list[bytes]] | None:
        found = self._last.get(key)
        if found is not None:
            self._last.move_to_end(key)
        return found

    def put(self, key: tuple[str, str, str], version: str, digests: list[bytes]) -> None:
        self._last[key] = (version, digests)
        self._last.move_to_end(key)
        while len(self._last) > self._size:
            self._last.popitem(last=False)

    def forget_thread(self, thread_id: str) -> None:
        """Drop a thread's entries (its stored values may be gone)."""
        for key in [k for k in self._last if k[0] == thread_id]:
            del self._last[key]


def encode_values(
    serde: SerializerProtocol,
    thread_id: str,
    checkpoint_ns: str,
    values: Mapping[str, Any],
    new_versions: Mapping[str, Any],
    memory: ListMemory | None,
) -> tuple[Encoded, Callable[[], None]]:
    """The channels of ``new_versions`` at their new versions, deltas where possible.

    Also returns what to call once the event is stored: it makes these
    versions the bases of the next deltas (a version never stored must not be one).
    """
    learned: list[tuple[tuple[str, str, str], str, list[bytes]]] = []
    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for channel, raw_version in new_versions.items():
        version = str(raw_version)
        if channel not in values:
            entries.append({"channel": channel, "version": version, "type": EMPTY, "size": 0})
            continue
        value = values[channel]
        if type(value) is not list:
            kind, data = serde.dumps_typed(value)
            entries.append(
                {"channel": channel, "version": version, "type": kind, "size": len(data)}
            )
            chunks.append(data)
            continue
        items = [serde.dumps_typed(item) for item in value]
        digests = [_digest(kind, data) for kind, data in items]
        key = (thread_id, checkpoint_ns, channel)
        base: str | None = None
        keep = 0
        last = memory.get(key) if memory is not None else None
        if last is not None and last[0] != version:
            base_version, base_digests = last
            limit = min(len(base_digests), len(digests))
            while keep < limit and base_digests[keep] == digests[keep]:
                keep += 1
            if keep:
                base = base_version
        learned.append((key, version, digests))
        appended = items[keep:]
        entries.append(
            {
                "channel": channel,
                "version": version,
                "base": base,
                "keep": keep,
                "items": [[kind, len(data)] for kind, data in appended],
            }
        )
        chunks.extend(data for _, data in appended)

    def remember() -> None:
        if memory is not None:
            for key, version, digests in learned:
                memory.put(key, version, digests)

    return Encoded(entries, b"".join(chunks)), remember


def decode_values(
    serde: SerializerProtocol, versions: Mapping[str, Any], rows: Sequence[ValueRow]
) -> dict[str, Any]:
    """The channel values of a checkpoint whose channel versions are ``versions``."""
    by_key = {(r.channel, r.version): r for r in rows}
    lists: dict[tuple[str, str], list[Any]] = {}

    def items_of(row: ValueRow) -> list[Any]:
        # Iterative: a thread's chain of deltas is as long as its history.
        chain = [row]
        while chain[-1].base is not None and (chain[-1].channel, chain[-1].version) not in lists:
            last = chain[-1]
            base = by_key.get((last.channel, str(last.base)))
            if base is None or base.type is not None:
                raise CorruptCheckpointError(
                    f"channel {last.channel!r} version {last.version} builds on version "
                    f"{last.base}, which is not stored (pruned or deleted elsewhere?)"
                )
            chain.append(base)
        out: list[Any] = []
        for link in reversed(chain):
            key = (link.channel, link.version)
            if key in lists:
                out = lists[key]
                continue
            out = out[: link.keep] if link.base is not None else []
            at = 0
            for kind, size in link.items:
                out.append(serde.loads_typed((kind, link.data[at : at + size])))
                at += size
            lists[key] = out
        return out

    values: dict[str, Any] = {}
    for channel, raw_version in versions.items():
        row = by_key.get((channel, str(raw_version)))
        if row is None or row.type == EMPTY:
            continue
        if row.type is None:
            values[channel] = list(items_of(row))
        else:
            values[channel] = serde.loads_typed((row.type, row.data))
    return values


def encode_writes(
    serde: SerializerProtocol, writes: Sequence[tuple[str, Any]], index: Mapping[str, int]
) -> Encoded:
    """A task's writes; ``index`` gives special channels their fixed (negative) idx."""
    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for idx, (channel, value) in enumerate(writes):
        kind, data = serde.dumps_typed(value)
        entries.append(
            {"idx": index.get(channel, idx), "channel": channel, "type": kind, "size": len(data)}
        )
        chunks.append(data)
    return Encoded(entries, b"".join(chunks))


def decode_writes(
    serde: SerializerProtocol, rows: Sequence[WriteRow]
) -> list[tuple[str, str, Any]]:
    """``(task_id, channel, value)`` of stored writes, in their stored order."""
    return [(w.task_id, w.channel, serde.loads_typed((w.type, w.data))) for w in rows]
