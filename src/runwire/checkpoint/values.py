"""Channel values and pending writes <-> the bytes and descriptors of checkpoint events.

Contract:
- Every value and write is the saver's serializer's ``(type, bytes)``
  (LangGraph's ``dumps_typed``), kept byte for byte.
- A channel whose value is a plain ``list`` (a ``messages`` channel) is stored
  as items, each serialized on its own, when every item serializes with the
  kind the serializer gives a list (``msgpack``): an item's bytes are then
  what they are inside the list. A list holding an item the serializer
  treats apart at the top level (``None``, ``bytes``, ``bytearray``: kinds of
  their own, and a ``bytearray`` comes back as ``bytes`` from inside a list)
  or cannot encode in a list's kind (``pickle``) is stored whole.
- When a stored version of the same channel of the same thread and
  namespace is known (:class:`ListMemory`), only what changed is stored: the
  number of leading items kept from that version (``base``) and the items
  after them. A growing list therefore costs its new items per step, not
  its whole length. Any other value is stored whole.
- A base is only ever a value known to be stored as it is remembered: one
  read back from the store, or one this process put for the first time
  under a version nobody else can have stored first (the saver's memory:
  one it minted). The projection keeps the first value of a version, so the
  value of a version put again is not what is stored.
- Decoding rebuilds exactly the value the serializer would give for the
  whole list: the kept items of the base (itself rebuilt the same way), then
  the appended ones. A link keeping more items than its base holds, or
  building on a version not stored, raises :class:`CorruptCheckpointError`.
- A channel named in ``new_versions`` but absent from the checkpoint's
  values is stored as ``empty`` and left out when read (as LangGraph's own
  savers do).
"""

from __future__ import annotations

import hashlib
import threading
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
    "stored_digests",
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
    """The base of each list channel's next delta: a stored version and its items' digests.

    Bounded (least recently used entries go); a miss only means a whole value
    (or a read of the store). Safe to share between threads.

    ``claim`` says whether a put's own value may become a base once its event
    is stored: the first put of a ``(thread, namespace, channel, version)`` in
    this process only, and with ``minted_only`` (the saver) only for a version
    :meth:`mint` recorded: a version named by a caller may already be stored
    with another value (by another process, or before a restart), and the
    stored value is the first one put.
    """

    def __init__(self, size: int = 4096, *, minted_only: bool = False) -> None:
        self._size = size
        self._minted_only = minted_only
        self._last: OrderedDict[tuple[str, str, str], tuple[str, list[bytes]]] = OrderedDict()
        # version -> the keys whose put of it has been claimed (bounded: an
        # evicted version is no longer claimable, which is safe).
        self._versions: OrderedDict[str, set[tuple[str, str, str]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> tuple[str, list[bytes]] | None:
        with self._lock:
            found = self._last.get(key)
            if found is not None:
                self._last.move_to_end(key)
            return found

    def put(self, key: tuple[str, str, str], version: str, digests: list[bytes]) -> None:
        """Make ``version`` (stored, with items of these digests) the key's base."""
        with self._lock:
            self._last[key] = (version, digests)
            self._last.move_to_end(key)
            while len(self._last) > self._size:
                self._last.popitem(last=False)

    def mint(self, version: str) -> None:
        """Record a version this process made (unique: no one else can have stored it)."""
        with self._lock:
            self._versions.setdefault(version, set())
            self._trim_versions()

    def claim(self, key: tuple[str, str, str], version: str) -> bool:
        """Whether this put of ``version`` may become the key's base once stored (at
        most once per key and version; see the class docstring)."""
        with self._lock:
            claimed = self._versions.get(version)
            if claimed is None:
                if self._minted_only:
                    return False
                claimed = self._versions[version] = set()
                self._trim_versions()
            if key in claimed:
                return False
            claimed.add(key)
            return True

    def forget(self, key: tuple[str, str, str]) -> None:
        with self._lock:
            self._last.pop(key, None)

    def forget_thread(self, thread_id: str) -> None:
        """Drop a thread's entries (its stored values may be gone)."""
        with self._lock:
            for key in [k for k in self._last if k[0] == thread_id]:
                del self._last[key]

    def _trim_versions(self) -> None:
        while len(self._versions) > self._size * 16:
            self._versions.popitem(last=False)


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
    versions the bases of the next deltas where ``memory`` allows it (a
    version never stored, or stored with another value, must not be one).
    """
    learned: list[tuple[tuple[str, str, str], str, list[bytes]]] = []
    doubtful: list[tuple[str, str, str]] = []
    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    list_kind: str | None = None
    for channel, raw_version in new_versions.items():
        version = str(raw_version)
        if channel not in values:
            entries.append({"channel": channel, "version": version, "type": EMPTY, "size": 0})
            continue
        value = values[channel]
        items: list[tuple[str, bytes]] | None = None
        if type(value) is list:
            if list_kind is None:
                list_kind = serde.dumps_typed([])[0]
            items = [serde.dumps_typed(item) for item in value]
            if any(kind != list_kind for kind, _ in items):
                items = None  # an item the list's own kind would give back otherwise
        if items is None:
            kind, data = serde.dumps_typed(value)
            entries.append(
                {"channel": channel, "version": version, "type": kind, "size": len(data)}
            )
            chunks.append(data)
            continue
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
        if memory is not None:
            if memory.claim(key, version):
                learned.append((key, version, digests))
            else:
                doubtful.append(key)
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
            # What is stored under this version may not be this value: the
            # next put of the channel reads its base from the store instead.
            for key in doubtful:
                memory.forget(key)

    return Encoded(entries, b"".join(chunks)), remember


def _chain(
    by_key: Mapping[tuple[str, str], ValueRow],
    row: ValueRow,
    done: Callable[[tuple[str, str]], bool] = lambda _: False,
) -> list[ValueRow]:
    """``row`` and the bases it builds on (newest first), down to one that builds on
    none or is ``done`` (already rebuilt)."""
    # Iterative: a thread's chain of deltas is as long as its history.
    chain = [row]
    seen = {(row.channel, row.version)}
    while chain[-1].base is not None and not done((chain[-1].channel, chain[-1].version)):
        last = chain[-1]
        key = (last.channel, str(last.base))
        base = by_key.get(key)
        if key in seen:
            raise CorruptCheckpointError(
                f"channel {last.channel!r} version {last.version} builds on version "
                f"{last.base}, which builds on it in turn"
            )
        if base is None or base.type is not None:
            raise CorruptCheckpointError(
                f"channel {last.channel!r} version {last.version} builds on version "
                f"{last.base}, which is not stored (pruned or deleted elsewhere?)"
            )
        seen.add(key)
        chain.append(base)
    return chain


def _kept(link: ValueRow, base_length: int) -> int:
    """How many items ``link`` keeps of its base; the base must hold that many."""
    if link.base is None:
        return 0
    if link.keep > base_length:
        raise CorruptCheckpointError(
            f"channel {link.channel!r} version {link.version} keeps {link.keep} items of "
            f"version {link.base}, which holds {base_length}"
        )
    return link.keep


def stored_digests(rows: Sequence[ValueRow], channel: str, version: str) -> list[bytes] | None:
    """The item digests of the stored list ``(channel, version)``, rebuilt from ``rows``
    (it and its bases, as the reader's ``values`` gives them); None when it is not a
    stored list (a whole value, missing, or a broken chain): it can be no base."""
    by_key = {(r.channel, r.version): r for r in rows}
    row = by_key.get((channel, version))
    if row is None or row.type is not None:
        return None
    try:
        chain = _chain(by_key, row)
        digests: list[bytes] = []
        for link in reversed(chain):
            digests = digests[: _kept(link, len(digests))]
            at = 0
            for kind, size in link.items:
                digests.append(_digest(kind, link.data[at : at + size]))
                at += size
    except CorruptCheckpointError:
        return None
    return digests


def decode_values(
    serde: SerializerProtocol, versions: Mapping[str, Any], rows: Sequence[ValueRow]
) -> dict[str, Any]:
    """The channel values of a checkpoint whose channel versions are ``versions``."""
    by_key = {(r.channel, r.version): r for r in rows}
    lists: dict[tuple[str, str], list[Any]] = {}

    def items_of(row: ValueRow) -> list[Any]:
        out: list[Any] = []
        for link in reversed(_chain(by_key, row, lists.__contains__)):
            key = (link.channel, link.version)
            if key in lists:
                out = lists[key]
                continue
            out = out[: _kept(link, len(out))]
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
