"""``RunwireSaver``: a LangGraph checkpointer whose checkpoints are events on runwire's log.

Contract (LangGraph's ``BaseCheckpointSaver``, checked by
``langgraph-checkpoint-conformance``, every capability):
- ``put`` writes one ``checkpoint_put`` event on the checkpoints topic, keyed
  by thread: the checkpoint without its values, its metadata, and the values
  of the channels in ``new_versions`` (list channels as deltas, see
  :mod:`.values`). ``put_writes`` writes one ``checkpoint_writes`` event. On
  return the event is durable and every read shows it (read-your-writes).
- ``get_tuple`` / ``list`` read the checkpoints projection: the newest
  checkpoint when the config names none, ``list`` newest first with
  ``filter`` (InMemorySaver's rule: each key's value equal, a missing key
  equal to None), ``before`` and ``limit`` (0 or less: none); pending writes
  in LangGraph's ``writes_sort_key`` order.
- ``delete_thread``, ``delete_for_runs``, ``copy_thread`` and ``prune`` are
  events too: the log stays append-only and a rebuild of the projection
  gives the same state. ``delete_for_runs`` writes one event per thread
  holding those runs; ``copy_thread`` re-writes the source's checkpoints,
  values and writes as the target's own events, oldest first (a
  namespace's values over as many puts of its oldest checkpoint as
  ``max_event_bytes`` needs). A copy, not a shared prefix: the target must
  outlive the source's delete, prune and ``delete_for_runs`` (LangGraph's
  contract) and be read from its own partition.
- Every method has its async and sync form. I/O runs on the saver's own loop
  thread (:mod:`.loop`), so a saver serves any event loop and any thread.
- Metadata is kept as JSON, tuples as arrays (read back as lists), as
  LangGraph's Postgres saver keeps it (``DeltaChannel`` writes its counters
  as tuples there).
- Bad input (a thread id over the id limits, metadata or a checkpoint that
  is not JSON or nested over 200 levels, NUL or a lone surrogate in a
  namespace, checkpoint or task id, task path, channel name, metadata key or
  text, a value over ``max_event_bytes``) raises
  :class:`~runwire.errors.InputError` naming the field; nothing is written.
- A read naming such text (a thread, namespace, checkpoint id, ``before``,
  a ``filter`` key or value) finds nothing, as no put could store it.
- A list channel's delta base is what this process last stored for it
  under a version it made, or else the parent checkpoint's stored version,
  read from the store (so a new process continuing a thread writes deltas
  too); see :mod:`.values`.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import orjson
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from pydantic import ValidationError

from runwire.checkpoint.inmem import InMemoryCheckpointStore
from runwire.checkpoint.log_store import LogCheckpointStore
from runwire.checkpoint.protocol import CheckpointStore
from runwire.checkpoint.values import (
    Encoded,
    ListMemory,
    decode_values,
    decode_writes,
    encode_values,
    encode_writes,
    stored_digests,
)
from runwire.contract import jsonvalues
from runwire.contract.events import (
    CheckpointPruned,
    CheckpointPut,
    CheckpointRunsDeleted,
    CheckpointThreadDeleted,
    CheckpointWrites,
    Event,
    EventPayload,
)
from runwire.contract.limits import text_problem
from runwire.errors import InputError
from runwire.loop_thread import LoopThread
from runwire.projections.checkpoints.fold import STRATEGIES, CheckpointRow, ValueRow
from runwire.settings import Settings

__all__ = ["PRODUCER", "RunwireSaver"]

PRODUCER = "runwire-langgraph"
T = TypeVar("T")
_ENVELOPE_ROOM = 4096
"""Bytes an event needs beside its values (envelope, descriptors): a pre-check margin."""


# Text the projection keeps in Postgres ``text`` columns (besides the thread id,
# an id the envelope checks): no NUL, no lone surrogate.
_TEXT_FIELDS = ("checkpoint_ns", "checkpoint_id", "parent_checkpoint_id", "task_id", "task_path")


def _event(payload_type: type[EventPayload], **fields: Any) -> Event:
    """The event of a payload built from ``fields``; :class:`InputError` naming the field."""
    # Metadata as LangGraph's Postgres saver stores it (jsonb: tuples as
    # arrays). The checkpoint must be JSON as it is: InMemorySaver gives its
    # tuples back as tuples, so an array would not be the same.
    for name, tuples in (("checkpoint", False), ("metadata", True)):
        if name in fields:
            fields[name] = _as_json(fields[name], name, tuples=tuples)
    for name in _TEXT_FIELDS:
        _require_text(fields.get(name), name)
    try:
        return Event.create(payload_type(**fields), producer=PRODUCER)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(part) for part in ("payload", *first["loc"]))
        raise InputError(where, first["msg"]) from None


def _require_text(value: Any, where: str) -> None:
    """Refuse text no store can hold (NUL, a lone surrogate), naming ``where``."""
    if isinstance(value, str):
        why = text_problem(value)
        if why is not None:
            raise InputError(where, why)


def _as_json(value: Any, where: str, depth: int = 1, *, tuples: bool) -> Any:
    """``value`` as JSON keeps it (with ``tuples``, tuples as lists); :class:`InputError`
    for what JSON would not keep, naming the innermost key or index that holds it."""
    # Held a level down in its event (jsonvalues.MAX_HELD_DEPTH).
    if tuples and isinstance(value, tuple):
        value = list(value)
    if isinstance(value, dict | list) and depth > jsonvalues.MAX_HELD_DEPTH:
        raise InputError(where, f"nested deeper than {jsonvalues.MAX_HELD_DEPTH} lists and objects")
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            if not isinstance(key, str):
                raise InputError(where, f"key {key!r} is not a string (JSON keys are)")
            why = text_problem(key)
            if why is not None:
                raise InputError(where, f"key {key!r} {why}")
            out[key] = _as_json(inner, f"{where}[{key!r}]", depth + 1, tuples=tuples)
        return out
    if isinstance(value, list):
        return [
            _as_json(inner, f"{where}[{i}]", depth + 1, tuples=tuples)
            for i, inner in enumerate(value)
        ]
    if isinstance(value, str):
        _require_text(value, where)
        return value
    try:
        text = orjson.dumps(value)
    except TypeError:
        raise InputError(where, f"{type(value).__name__} {value!r:.80} is not JSON") from None
    if orjson.loads(text) != value:
        raise InputError(where, f"{value!r:.80} would not survive JSON unchanged")
    return value


def _names_unstorable_text(*named: Any) -> bool:
    """Whether a read names text no store can hold (NUL, a lone surrogate: what
    :func:`_require_text` refuses on the way in) in an id, a namespace or a filter's
    keys and values. Nothing stored can match it, so the read finds nothing (as in
    InMemorySaver) rather than send it to Postgres, which refuses it."""
    todo = list(named)
    while todo:
        value = todo.pop()
        if isinstance(value, str):
            if text_problem(value) is not None:
                return True
        elif isinstance(value, dict):
            todo.extend(value.keys())
            todo.extend(value.values())
        elif isinstance(value, list | tuple):
            todo.extend(value)
    return False


def _storable_bound(before: str) -> str:
    """A ``before`` bound Postgres can take that lists the same stored ids.

    ``before`` names no checkpoint but bounds them all the same (InMemorySaver
    lists the ids less than it). Stored ids hold neither NUL nor a lone
    surrogate, so from the first such character on, ``before`` orders as
    ``\x01`` after a NUL's prefix (the prefix itself is less, anything longer
    is not) or ``\ue000`` for a surrogate (no stored character lies between).
    """
    if text_problem(before) is None:
        return before
    for at, char in enumerate(before):
        if char == "\x00":
            return before[:at] + "\x01"
        if "\ud800" <= char <= "\udfff":
            return before[:at] + "\ue000"
    return before  # unreachable: text_problem found one of them


def _value_chunks(
    row: CheckpointRow, values: Sequence[ValueRow], max_bytes: int
) -> list[tuple[list[dict[str, Any]], bytes]]:
    """``values`` as (descriptors, bytes) chunks that each fit one ``checkpoint_put`` of
    ``row`` (at least one chunk, maybe empty).

    A thread's values together may be far over ``max_event_bytes`` although
    each put that wrote them fitted; the copy repeats ``row``'s put once per
    chunk (a put of a stored checkpoint only adds the values it carries).
    """
    room = (
        max_bytes
        - _ENVELOPE_ROOM
        - len(orjson.dumps(row.checkpoint))
        - len(orjson.dumps(row.metadata))
    )
    chunks: list[tuple[list[dict[str, Any]], bytes]] = []
    entries: list[dict[str, Any]] = []
    data: list[bytes] = []
    used = 0
    for v in values:
        entry: dict[str, Any] = (
            {
                "channel": v.channel,
                "version": v.version,
                "base": v.base,
                "keep": v.keep,
                "items": [list(i) for i in v.items],
            }
            if v.type is None
            else {
                "channel": v.channel,
                "version": v.version,
                "type": v.type,
                "size": len(v.data),
            }
        )
        size = len(v.data) + len(orjson.dumps(entry))
        if entries and used + size > room:
            chunks.append((entries, b"".join(data)))
            entries, data, used = [], [], 0
        entries.append(entry)
        data.append(v.data)
        used += size
    chunks.append((entries, b"".join(data)))
    return chunks


def _reentered() -> BaseException:
    return RuntimeError(
        "a sync method of the checkpoint saver was called on the saver's own loop "
        "thread; call the async method (aget_tuple, aput, ...) there instead"
    )


class _Runtime:
    """The loop thread a saver and its clones share (they copy this object's reference)."""

    def __init__(self) -> None:
        self.loop: LoopThread | None = None
        self.lock = threading.Lock()


class RunwireSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer on runwire (see the module contract).

    ``RunwireSaver(settings=...)`` keeps checkpoints on the stack that
    ``settings`` names (running a checkpoints projector in this process unless
    ``run_projector=False``); ``RunwireSaver(store=...)`` on any
    :class:`~runwire.checkpoint.protocol.CheckpointStore` (e.g. the in-memory
    twin, ``RunwireSaver.in_memory()``). Use it as a context manager (``with``
    or ``async with``) or call :meth:`setup` / :meth:`close`.
    """

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        store: CheckpointStore | None = None,
        serde: SerializerProtocol | None = None,
        run_projector: bool = True,
    ) -> None:
        super().__init__(serde=serde)
        if store is None:
            store = LogCheckpointStore(settings or Settings(), run_projector=run_projector)
        self.store = store
        self.settings = settings
        self._max_bytes = (settings or Settings()).max_event_bytes
        # Only versions this saver made become delta bases from memory: a version a
        # caller names may already be stored with another value (see .values).
        self._lists = ListMemory(minted_only=True)
        self._runtime = _Runtime()

    @classmethod
    def in_memory(cls, *, serde: SerializerProtocol | None = None) -> RunwireSaver:
        """A saver on the in-memory twin (no servers; for tests)."""
        return cls(store=InMemoryCheckpointStore(), serde=serde)

    # -- lifecycle ---------------------------------------------------------------------

    def setup(self) -> None:
        """Start the loop thread and the store (connections, tables, projector); idempotent.

        The saver and its clones (LangGraph's ``with_allowlist`` copies a saver
        when a graph is compiled) share one loop thread and store, whichever
        starts first.
        """
        runtime = self._runtime
        with runtime.lock:
            if runtime.loop is not None:
                return
            loop = LoopThread(
                "runwire-checkpoint",
                reentry=_reentered,
                closed="the checkpoint saver is closed",
            )
            try:
                loop.run_sync(self.store.start())
            except BaseException:
                loop.close()
                raise
            runtime.loop = loop

    async def asetup(self) -> None:
        """:meth:`setup` from async code (it runs on a worker thread)."""
        await asyncio.to_thread(self.setup)

    def close(self) -> None:
        """Stop the store and the loop thread (for the clones too); idempotent."""
        runtime = self._runtime
        with runtime.lock:
            loop, runtime.loop = runtime.loop, None
            if loop is None:
                return
            try:
                loop.run_sync(self.store.stop())
            finally:
                loop.close()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    async def on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the saver's loop thread, where the store's connections live
        (to inspect the store's tables, say)."""
        return await self._runner.run(coro)

    def __enter__(self) -> Self:
        self.setup()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        await self.asetup()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def _runner(self) -> LoopThread:
        loop = self._runtime.loop
        if loop is None:
            # A saver used without `with` starts on first use, as LangGraph's
            # own savers need no separate start either.
            self.setup()
            loop = self._runtime.loop
        assert loop is not None
        return loop

    # -- versions ----------------------------------------------------------------------

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Monotonic versions unique across forks (a replay from an old checkpoint)."""
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(str(current).split(".")[0])
        version = f"{current_v + 1:032}.{random.random():016}"
        self._lists.mint(version)
        return version

    # -- reading -----------------------------------------------------------------------

    async def _tuple(self, row: CheckpointRow) -> CheckpointTuple:
        versions = dict(row.checkpoint.get("channel_versions") or {})
        wanted = [(channel, str(version)) for channel, version in versions.items()]
        # Two independent reads: on two connections at once.
        values, writes = await asyncio.gather(
            self.store.reader.values(row.thread_id, row.checkpoint_ns, wanted),
            self.store.reader.writes(row.thread_id, row.checkpoint_ns, [row.checkpoint_id]),
        )
        checkpoint: Any = {
            **row.checkpoint,
            "channel_values": decode_values(self.serde, versions, values),
        }
        return CheckpointTuple(
            config={
                "configurable": {
                    "thread_id": row.thread_id,
                    "checkpoint_ns": row.checkpoint_ns,
                    "checkpoint_id": row.checkpoint_id,
                }
            },
            checkpoint=checkpoint,
            metadata=row.metadata,  # type: ignore[arg-type]
            parent_config=(
                {
                    "configurable": {
                        "thread_id": row.thread_id,
                        "checkpoint_ns": row.checkpoint_ns,
                        "checkpoint_id": row.parent_checkpoint_id,
                    }
                }
                if row.parent_checkpoint_id
                else None
            ),
            pending_writes=decode_writes(self.serde, writes.get(row.checkpoint_id, [])),
        )

    async def _get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        conf = config["configurable"]
        thread_id, checkpoint_ns = str(conf["thread_id"]), conf.get("checkpoint_ns", "")
        checkpoint_id = get_checkpoint_id(config)
        if _names_unstorable_text(thread_id, checkpoint_ns, checkpoint_id):
            return None
        row = await self.store.reader.get(thread_id, checkpoint_ns, checkpoint_id)
        return None if row is None else await self._tuple(row)

    async def _list(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> list[CheckpointTuple]:
        if limit is not None and limit <= 0:
            return []  # as InMemorySaver (Postgres refuses a negative LIMIT)
        conf = (config or {}).get("configurable") or {}
        thread_id = conf.get("thread_id")
        thread_id = None if thread_id is None else str(thread_id)
        checkpoint_id = get_checkpoint_id(config) if config else None
        before_id = get_checkpoint_id(before) if before else None
        if _names_unstorable_text(thread_id, conf.get("checkpoint_ns"), checkpoint_id, filter):
            return []
        if before_id is not None:
            before_id = _storable_bound(before_id)
        # LangGraph's rule (InMemorySaver's) is equality per key, a missing key
        # equal to None. jsonb containment agrees on text only: it matches a
        # list or object holding more, not a missing key for None, nor 1 for
        # True. Text keys go to Postgres; the rest is checked here, then limited.
        text = {k: v for k, v in (filter or {}).items() if isinstance(v, str)}
        rest = {k: v for k, v in (filter or {}).items() if not isinstance(v, str)}
        rows = await self.store.reader.find(
            thread_id,
            conf.get("checkpoint_ns"),
            checkpoint_id=checkpoint_id,
            filter=text or None,
            before=before_id,
            limit=None if rest else limit,
        )
        if rest:
            rows = [r for r in rows if all(v == r.metadata.get(k) for k, v in rest.items())]
            rows = rows[:limit] if limit is not None else rows
        return [await self._tuple(row) for row in rows]

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._runner.run(self._get_tuple(config))

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._runner.run_sync(self._get_tuple(config))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        for found in await self._runner.run(self._list(config, filter, before, limit)):
            yield found

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        yield from self._runner.run_sync(self._list(config, filter, before, limit))

    # -- writing -----------------------------------------------------------------------

    def _check_size(self, encoded: Encoded, where: str) -> None:
        if len(encoded.data) + _ENVELOPE_ROOM <= self._max_bytes:
            return
        sizes = [
            (e.get("size", 0) + sum(n for _, n in e.get("items", [])), e.get("channel", "?"))
            for e in encoded.entries
        ]
        biggest, channel = max(sizes)
        raise InputError(
            f"{where}[{channel!r}]",
            f"{biggest} bytes serialized ({len(encoded.data)} in all); one event holds at most "
            f"max_event_bytes={self._max_bytes} (RUNWIRE_MAX_EVENT_BYTES)",
        )

    async def _recall_bases(
        self,
        thread_id: str,
        checkpoint_ns: str,
        parent_id: str | None,
        checkpoint: Checkpoint,
        new_versions: ChannelVersions,
    ) -> None:
        """Give the list channels this process holds no delta base for the parent
        checkpoint's stored versions as bases (read from the store: what is stored is
        the base, whoever wrote it). A new process continuing a thread so stores its
        new items, not the whole list; a miss only means a whole value."""
        if parent_id is None:
            return
        values = checkpoint["channel_values"]
        missing = [
            channel
            for channel in new_versions
            if type(values.get(channel)) is list
            and self._lists.get((thread_id, checkpoint_ns, channel)) is None
        ]
        # Text no store holds is refused by the put itself (InputError), not here.
        if not missing or _names_unstorable_text(thread_id, checkpoint_ns, parent_id, missing):
            return
        parent = await self.store.reader.get(thread_id, checkpoint_ns, parent_id)
        if parent is None:
            return
        versions = dict(parent.checkpoint.get("channel_versions") or {})
        wanted = [
            (channel, str(versions[channel]))
            for channel in missing
            if channel in versions and str(versions[channel]) != str(new_versions[channel])
        ]
        if not wanted:
            return
        rows = await self.store.reader.values(thread_id, checkpoint_ns, wanted)
        for channel, version in wanted:
            digests = stored_digests(rows, channel, version)
            if digests is not None:
                self._lists.put((thread_id, checkpoint_ns, channel), version, digests)

    async def _put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        checkpoint_ns = conf.get("checkpoint_ns", "")
        skeleton = {k: v for k, v in checkpoint.items() if k != "channel_values"}
        await self._recall_bases(
            thread_id, checkpoint_ns, conf.get("checkpoint_id"), checkpoint, new_versions
        )
        encoded, remember = encode_values(
            self.serde,
            thread_id,
            checkpoint_ns,
            checkpoint["channel_values"],
            new_versions,
            self._lists,
        )
        self._check_size(encoded, "checkpoint.channel_values")
        event = _event(
            CheckpointPut,
            thread_id=thread_id,
            checkpoint_ns=checkpoint_ns,
            checkpoint_id=checkpoint["id"],
            parent_checkpoint_id=conf.get("checkpoint_id"),
            checkpoint=skeleton,
            metadata=dict(get_serializable_checkpoint_metadata(config, metadata)),
            values=encoded.entries,
            data=encoded.data,
        )
        await self.store.append([event])
        # Only a stored version may be the base of the next delta.
        remember()
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self._runner.run(self._put(config, checkpoint, metadata, new_versions))

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._runner.run_sync(self._put(config, checkpoint, metadata, new_versions))

    async def _put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> None:
        conf = config["configurable"]
        for i, (channel, _) in enumerate(writes):
            _require_text(channel, f"writes[{i}] (channel {channel!r})")
        encoded = encode_writes(self.serde, writes, WRITES_IDX_MAP)
        self._check_size(encoded, "writes")
        event = _event(
            CheckpointWrites,
            thread_id=str(conf["thread_id"]),
            checkpoint_ns=conf.get("checkpoint_ns", ""),
            checkpoint_id=conf["checkpoint_id"],
            task_id=task_id,
            task_path=task_path,
            writes=encoded.entries,
            data=encoded.data,
        )
        await self.store.append([event])

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self._runner.run(self._put_writes(config, writes, task_id, task_path))

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._runner.run_sync(self._put_writes(config, writes, task_id, task_path))

    # -- deleting, copying, pruning ------------------------------------------------------

    async def _delete_thread(self, thread_id: str) -> None:
        await self.store.append([_event(CheckpointThreadDeleted, thread_id=str(thread_id))])
        self._lists.forget_thread(str(thread_id))

    async def adelete_thread(self, thread_id: str) -> None:
        await self._runner.run(self._delete_thread(thread_id))

    def delete_thread(self, thread_id: str) -> None:
        self._runner.run_sync(self._delete_thread(thread_id))

    async def _delete_for_runs(self, run_ids: Sequence[str]) -> None:
        # A run id no metadata can hold (put refuses such text) names no thread.
        runs = sorted({str(r) for r in run_ids if not _names_unstorable_text(str(r))})
        if not runs:
            return
        threads = await self.store.reader.threads_of_runs(runs)
        await self.store.append(
            [_event(CheckpointRunsDeleted, thread_id=t, run_ids=runs) for t in threads]
        )

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self._runner.run(self._delete_for_runs(run_ids))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        self._runner.run_sync(self._delete_for_runs(run_ids))

    async def _copy_thread(self, source: str, target: str) -> None:
        rows = await self.store.reader.find(str(source))
        if not rows:
            return
        values = await self.store.reader.thread_values(str(source))
        events: list[Event] = []
        by_ns: dict[str, list[Any]] = {}
        for v in values:
            by_ns.setdefault(v.checkpoint_ns, []).append(v)
        carried: set[str] = set()
        for row in sorted(rows, key=lambda r: r.checkpoint_id.encode()):
            # Each namespace's values travel once, with its oldest checkpoint.
            mine = [] if row.checkpoint_ns in carried else by_ns.get(row.checkpoint_ns, [])
            carried.add(row.checkpoint_ns)
            for entries, data in _value_chunks(row, mine, self._max_bytes):
                events.append(
                    _event(
                        CheckpointPut,
                        thread_id=str(target),
                        checkpoint_ns=row.checkpoint_ns,
                        checkpoint_id=row.checkpoint_id,
                        parent_checkpoint_id=row.parent_checkpoint_id,
                        checkpoint=row.checkpoint,
                        metadata=row.metadata,
                        values=entries,
                        data=data,
                    )
                )
            writes = await self.store.reader.writes(
                str(source), row.checkpoint_ns, [row.checkpoint_id]
            )
            by_task: dict[tuple[str, str], list[Any]] = {}
            for w in writes.get(row.checkpoint_id, []):
                by_task.setdefault((w.task_id, w.task_path), []).append(w)
            # One task's writes came in one event, so they fit one again.
            for (task_id, task_path), ws in by_task.items():
                events.append(
                    _event(
                        CheckpointWrites,
                        thread_id=str(target),
                        checkpoint_ns=row.checkpoint_ns,
                        checkpoint_id=row.checkpoint_id,
                        task_id=task_id,
                        task_path=task_path,
                        writes=[
                            {
                                "idx": w.idx,
                                "channel": w.channel,
                                "type": w.type,
                                "size": len(w.data),
                            }
                            for w in ws
                        ],
                        data=b"".join(w.data for w in ws),
                    )
                )
        await self.store.append(events)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._runner.run(self._copy_thread(source_thread_id, target_thread_id))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._runner.run_sync(self._copy_thread(source_thread_id, target_thread_id))

    async def _prune(self, thread_ids: Sequence[str], strategy: str) -> None:
        if strategy not in STRATEGIES:
            raise InputError("strategy", f"{strategy!r} is none of {', '.join(STRATEGIES)}")
        threads = sorted({str(t) for t in thread_ids})
        await self.store.append(
            [_event(CheckpointPruned, thread_id=t, strategy=strategy) for t in threads]
        )
        for t in threads:
            self._lists.forget_thread(t)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await self._runner.run(self._prune(thread_ids, strategy))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self._runner.run_sync(self._prune(thread_ids, strategy))
