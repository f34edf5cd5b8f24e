"""The session backend on the log: Kafka for writes, the projections for reads.

- Writes: session events to the session-events topic, a run's events as one
  record batch on its partition of the run-events topic
  (``Publisher.publish_message``), memory to the memory topic.
- Reads: the session index (Postgres) for what a session is; the transcript
  cache (Redis, rebuilt from the log on a miss) for its runs and messages -
  one script call gives a session's runs in order with their stored
  messages, its clear point, whether it is deleted and its version
  (:mod:`~runwire.projections.transcripts.session_read`), so reading
  messages (:meth:`LogBackend.visible`) queries no Postgres; a session read
  whole is held while its version is unchanged (the cache then sends no
  runs), and a run's messages are decoded once per distinct stored body; the run-status
  store (Postgres) for the runs the cache does not know (after a flush) and
  for which runs were written through the Session API.
- Read-your-writes: each write waits until the projection that serves the
  matching read has applied its position (session index for session events,
  and the transcript cache too for a clear or a deletion; transcript cache for runs - and the run-status store for a new run, so
  every process knows it is a recorded one -, memory projection for memory).
  The projectors (``runs``, ``sessions``, ``transcripts``, ``memory``) must be
  running.
- A run write is checked after it lands: when the transcript cache did not
  take its last event (the ledger refused it, because another writer got in
  first), :class:`~runwire.sessions.errors.WriteRefusedError` is raised.
- ``keep_for`` sets the Redis TTL of the runs' cached transcripts; ``erase``
  deletes a session's cache entries (the log keeps its run events).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import redis.asyncio as aioredis

from runwire.contract.events import Event, RunStarted, SessionCleared, SessionDeleted
from runwire.errors import NotFoundError, NotStartedError
from runwire.log import Position, Publisher, publish_retrying
from runwire.memory.log_backend import LogMemoryBackend
from runwire.projections.runs.projection import RunsProjection
from runwire.projections.runs.reader import RunStore
from runwire.projections.runtime.protocol import Projection
from runwire.projections.sessions.projection import SessionsProjection
from runwire.projections.sessions.reader import SessionIndex
from runwire.projections.transcripts.keys import Keyspace, owner_tag
from runwire.projections.transcripts.miss import RunStoreLocator
from runwire.projections.transcripts.projection import TranscriptProjection
from runwire.projections.transcripts.reader import TranscriptCache
from runwire.projections.transcripts.session_read import DecodedRuns, SessionReader, StoredMessages
from runwire.projections.transcripts.store import Slot
from runwire.projections.transcripts.turns import starts_turn
from runwire.sessions.errors import WriteRefusedError
from runwire.sessions.inmem import deleted_info, info_of
from runwire.sessions.planning import SOURCE_LABEL, RunTail, millis
from runwire.sessions.protocol import KnownRun, Listener, RunRecord, SessionInfo
from runwire.sessions.watcher import LogWatcher
from runwire.settings import Settings
from runwire.transcript.messages import Message

__all__ = ["LogBackend", "Visible"]


@dataclass(frozen=True, slots=True)
class _Read:
    """A session read: its runs in order and the stored messages fetched with them."""

    generation: int
    runs: list[tuple[str, int]]
    bodies: dict[str, StoredMessages]
    asked: set[str]
    """Runs whose bodies were asked for (absent from ``bodies``: a cache miss)."""
    total: int
    """How many runs the session has (``runs`` may be the newest of them)."""
    filled: dict[str, list[Message]] = field(default_factory=dict)
    """Runs rebuilt from the log while reading (the index was lost)."""
    version: str = ""
    cleared_ms: int | None = None
    erased: bool = False
    same: bool = False
    """The session's version is the one the caller named: nothing was listed."""
    delta: bool = False
    """Only the runs changed since the version the caller named were listed
    (``total``: how many are visible)."""
    cached: bool = True
    """The cache listed the session (False: the run-status store did, after a
    flush; the clear point then comes from the session index)."""


@dataclass(frozen=True, slots=True)
class Visible:
    """A session's history as a read sees it: its runs after the clear point
    and their messages in order (a new list), or ``deleted``."""

    run_ids: list[str]
    messages: list[Message]
    deleted: bool = False

    @classmethod
    def of(cls, records: Sequence[RunRecord]) -> Visible:
        return cls([r.run_id for r in records], [m for r in records for m in r.messages])


@dataclass(frozen=True, slots=True)
class _Held:
    """A session as last read whole: what serves a read while its version holds."""

    version: str
    cleared_ms: int | None
    runs: list[tuple[str, int]]
    bodies: dict[str, StoredMessages]
    size: int


def _order(run: tuple[str, int]) -> tuple[int, str]:
    """A session index's order of (run id, first ms): by first ms, then run id."""
    return run[1], run[0]


@dataclass(frozen=True, slots=True)
class _Projections:
    sessions: Projection
    runs: Projection
    transcripts: Projection


class LogBackend(LogMemoryBackend):
    """A :class:`~runwire.sessions.protocol.SessionBackend` (and memory backend) on the stack.

    ``async with LogBackend(settings) as backend`` (or ``start()`` /
    ``stop()``); share one among many sessions of a process.
    ``decoded_bytes`` bounds the decoded transcripts kept between reads
    (:class:`~runwire.projections.transcripts.session_read.DecodedRuns`; 0
    decodes every read afresh), and, as much again, the stored messages of
    the sessions last read whole, served while their version holds (0: every
    read transfers the bodies).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        publisher: Publisher | None = None,
        wait_timeout: float = 10.0,
        decoded_bytes: int = 4 << 20,
    ) -> None:
        super().__init__(settings, publisher=publisher, wait_timeout=wait_timeout)
        self._redis: aioredis.Redis | None = None
        self._index: SessionIndex | None = None
        self._runs: RunStore | None = None
        self._cache: TranscriptCache | None = None
        self._applied: _Projections | None = None
        self._watcher = LogWatcher(settings)
        self._sources: dict[str, bool] = {}
        self._keys = Keyspace(settings.redis_key_prefix)
        self._reader: SessionReader | None = None
        self._decoded = DecodedRuns(decoded_bytes)
        self._held: OrderedDict[str, _Held] = OrderedDict()
        self._held_size = 0
        self._held_max = decoded_bytes
        self._owners: dict[str, str] = {}
        """Owner tag of each session described: reads list only its runs."""

    async def _start_more(self) -> None:
        self._redis = aioredis.Redis.from_url(self.settings.redis_url)
        self._reader = SessionReader(self._redis, self.settings.redis_key_prefix)
        self._index = SessionIndex(self.pool, self.settings)
        self._runs = RunStore(self.pool, self.settings)
        await self._index.prepare()
        await self._runs.prepare()
        self._cache = TranscriptCache(
            self.settings, client=self._redis, locator=RunStoreLocator(self._runs)
        )
        self._applied = _Projections(
            sessions=SessionsProjection(self.pool, self.settings),
            runs=RunsProjection(self.pool, self.settings),
            transcripts=TranscriptProjection(self._cache.store, self.settings),
        )

    async def _stop_more(self) -> None:
        await self._watcher.stop()
        cache, self._cache = self._cache, None
        if cache is not None:
            await cache.close()
        self._reader = None
        client, self._redis = self._redis, None
        if client is not None:
            await client.aclose()

    def _ready(self) -> tuple[SessionIndex, RunStore, TranscriptCache]:
        if self._index is None or self._runs is None or self._cache is None:
            raise NotStartedError("the backend is not started: use `async with` or start()")
        return self._index, self._runs, self._cache

    @property
    def cache(self) -> TranscriptCache:
        return self._ready()[2]

    @property
    def applied(self) -> _Projections:
        """The projections whose positions the writes wait for."""
        if self._applied is None:
            raise NotStartedError("the backend is not started: use `async with` or start()")
        return self._applied

    # -- sessions ------------------------------------------------------------------------

    async def describe(self, session_id: str) -> SessionInfo | None:
        index, _, _ = self._ready()
        try:
            row = await index.get(session_id)
        except NotFoundError:
            pass
        else:
            self._owners[session_id] = owner_tag(row.user_id, row.tenant)
            return info_of(row)
        if await index.is_deleted(session_id):
            return deleted_info(session_id, datetime.now().astimezone())
        return None

    async def write_session_events(self, events: Sequence[Event]) -> None:
        positions = await publish_retrying(
            self.publisher, events, atomic=False, attempts=5, max_delay=2.0
        )
        # One session, one partition: the last position covers the others.
        if any(isinstance(e.payload, SessionCleared | SessionDeleted) for e in events):
            # Reads take the clear point and the deletion from the transcript cache;
            # a deletion also removes the session's rows from the run-status store.
            waits = [
                self.wait(self.applied.sessions, positions[-1]),
                self.wait(self.applied.transcripts, positions[-1]),
            ]
            if any(isinstance(e.payload, SessionDeleted) for e in events):
                waits.append(self.wait(self.applied.runs, positions[-1]))
            await asyncio.gather(*waits)
        else:
            await self.wait(self.applied.sessions, positions[-1])

    # -- runs ------------------------------------------------------------------------------

    async def _live(self) -> int:
        generation = await self.cache.store.generation(Slot.LIVE)
        assert generation is not None
        return generation

    async def _first_ms(self, run_ids: Sequence[str]) -> dict[str, int]:
        """When each run began (cache meta, else the run-status store); unknown runs left out."""
        _, runs, cache = self._ready()
        heads = await cache.store.heads(await self._live(), run_ids)
        out = {r: h.meta.first_ms for r, h in heads.items() if h.meta is not None}
        for run_id in run_ids:
            if run_id not in out:
                try:
                    out[run_id] = millis((await runs.get(run_id)).started_at)
                except NotFoundError:
                    continue
        return out

    async def _recorded(self, run_id: str) -> bool:
        known = self._sources.get(run_id)
        if known is not None:
            return known
        try:
            run = await self._ready()[1].get(run_id)
        except NotFoundError:
            return False  # not projected yet: treat as someone else's run (a new one is opened)
        self._sources[run_id] = SOURCE_LABEL in run.labels
        return self._sources[run_id]

    async def _read(
        self, session_id: str, *, tail: int | None = None, known: str = "", visible: bool = False
    ) -> _Read:
        """The session's newest ``tail`` runs (all when None) in order with their
        stored messages, from the cache in one round trip. An erased session
        has none.

        When the cache lost the session's index (a flush), the run-status
        store lists the runs and every one of them is rebuilt from the log
        now, whatever ``tail`` asks: a rebuilt run goes back into the index,
        and an index holding only some of the runs would hide the others from
        later reads.
        """
        reader = self._reader
        if reader is None:
            raise NotStartedError("the backend is not started: use `async with` or start()")
        owner = await self._owner(session_id)
        read = await reader.read(session_id, tail=tail, known=known, visible=visible, owner=owner)
        gen, version, cleared = read.generation, read.version, read.cleared_ms
        if read.same or read.erased:
            return _Read(gen, [], {}, set(), 0, {}, version, cleared, read.erased, read.same)
        if read.delta:
            listed = {r for r, _ in read.runs}
            return _Read(
                gen, read.runs, read.bodies, listed, read.total, {}, version, cleared, delta=True
            )
        if read.total:
            listed = {r for r, _ in read.runs}
            return _Read(gen, read.runs, read.bodies, listed, read.total, {}, version, cleared)
        run_ids = await self.cache.locator.session_runs(session_id, owner=owner)
        if not run_ids:
            return _Read(gen, [], {}, set(), 0, {}, version, cleared)
        filled = {r: await self.cache.get(r) for r in run_ids}
        times = await self._first_ms(run_ids)
        runs = [(r, times[r]) for r in run_ids if r in times]
        return _Read(gen, runs, {}, set(run_ids), len(runs), filled, cached=False)

    async def _owner(self, session_id: str) -> str:
        """The session's owner tag ('' for a session the index does not hold: nothing to
        read of it then but what the cache lists)."""
        if session_id not in self._owners:
            await self.describe(session_id)
        return self._owners.get(session_id, "")

    async def _older(self, session_id: str, read: _Read) -> list[tuple[str, int]]:
        """The session's runs before those ``read`` listed (one more call)."""
        assert self._reader is not None
        owner = await self._owner(session_id)
        every = (await self._reader.runs(session_id, generation=read.generation, owner=owner)).runs
        ids = [r for r, _ in every]
        oldest = read.runs[0][0]
        # Not there: the session was erased or its generation dropped since.
        return every[: ids.index(oldest)] if oldest in ids else []

    async def _messages(self, read: _Read, run_ids: Sequence[str]) -> dict[str, list[Message]]:
        """Each run's messages: from the cache (fetching those ``read`` did not
        list, in one call), or rebuilt from the log on a miss."""
        bodies = read.bodies
        unasked = [r for r in run_ids if r not in read.asked]
        if unasked:
            assert self._reader is not None
            more = await self._reader.bodies(unasked, generation=read.generation)
            bodies = {**bodies, **more}
        out = self._decoded.decode({r: bodies[r] for r in run_ids if r in bodies})
        for run_id in run_ids:
            if run_id not in out:
                found = read.filled.get(run_id)
                out[run_id] = found if found is not None else await self.cache.get(run_id)
        return out

    async def tail(self, session_id: str) -> RunTail | None:
        read = await self._read(session_id, tail=1)
        if not read.runs:
            return None
        last, first = read.runs[-1]
        messages = await self._messages(read, [last])
        return RunTail(last, first, messages[last], await self._recorded(last))

    async def write_run(self, events: Sequence[Event]) -> None:
        positions = await publish_retrying(self.publisher, events, attempts=5, max_delay=2.0)
        last = positions[-1]
        run_id = events[0].run_id
        assert run_id is not None
        first = events[0].payload
        if isinstance(first, RunStarted):
            self._sources[run_id] = SOURCE_LABEL in first.labels
            # A new run: other processes learn from the run-status store whose it is.
            await asyncio.gather(
                self.wait(self.applied.transcripts, last), self.wait(self.applied.runs, last)
            )
        else:
            await self.wait(self.applied.transcripts, last)
        await self._check_taken(run_id, last)

    async def _check_taken(self, run_id: str, last: Position) -> None:
        head = (await self.cache.store.heads(await self._live(), [run_id]))[run_id]
        if head.meta is not None and head.meta.last < last.offset:
            raise WriteRefusedError(
                f"run {run_id}: the transcript cache did not take the event at "
                f"{last.topic}/{last.partition}@{last.offset} (it refused it: another writer "
                "changed the run first); see the dead-letter topic"
            )

    async def history(
        self, session_id: str, after_ms: int | None = None, turns: int | None = None
    ) -> list[RunRecord]:
        return (await self._history(session_id, after_ms, turns))[1]

    async def visible(self, session_id: str, turns: int | None = None) -> Visible:
        """The session's runs after its clear point (the newest holding the
        last ``turns`` turns, all when None), or ``deleted``: from the
        transcript cache alone - no query of the session index, unless the
        cache lost the session (a flush) and the run-status store lists it.

        A read names the version of the session the process holds (from its
        last whole read); when it is unchanged the cache sends no runs and the
        held ones are served (decoded ones reused, see
        :class:`~runwire.projections.transcripts.session_read.DecodedRuns`;
        for ``turns``, only the newest runs that hold them).
        """
        held = self._held.get(session_id)
        known = held.version if held is not None else ""
        if turns is None:
            read = await self._read(session_id, known=known, visible=True)
        else:
            read, records = await self._history(session_id, None, turns, known=known)
        if read.erased:
            self._drop_held(session_id)
            return Visible([], [], deleted=True)
        if held is not None and read.version == held.version:
            self._held.move_to_end(session_id)
            return self._held_visible(held, turns)
        if turns is None and read.delta:
            merged = self._merged(held, read)
            if merged is not None:
                self._keep(session_id, merged)
                return self._held_visible(merged, None)
            # It does not add up (runs gone, or a changed one expired): read whole.
            read = await self._read(session_id, visible=True)
        if turns is None:
            runs = read.runs
            messages = await self._messages(read, [r for r, _ in runs])
            self._hold(session_id, read)
            records = [RunRecord(r, t, messages[r]) for r, t in runs]
        cleared = read.cleared_ms if read.cached else await self._index_cleared(session_id)
        if cleared is not None:
            records = [r for r in records if r.first_ms > cleared]
        return Visible.of(records)

    async def _index_cleared(self, session_id: str) -> int | None:
        index, _, _ = self._ready()
        try:
            row = await index.get(session_id)
        except NotFoundError:
            return None
        cleared = info_of(row).cleared_at
        return millis(cleared) if cleared is not None else None

    def _held_visible(self, held: _Held, turns: int | None) -> Visible:
        """The held runs (after the clear point) with a new message list; for
        ``turns``, the newest runs that hold at least that many turn starts."""
        if turns is None:
            ids = [r for r, _ in held.runs]
            return Visible(ids, self._decoded.flat([held.bodies[r] for r in ids]))
        out: list[RunRecord] = []
        found = 0
        for run_id, first_ms in reversed(held.runs):
            run = self._decoded.decode({run_id: held.bodies[run_id]})[run_id]
            out.append(RunRecord(run_id, first_ms, run))
            found += sum(starts_turn(m) for m in run)
            if found >= max(turns, 1):
                break
        out.reverse()
        return Visible.of(out)

    @staticmethod
    def _merged(held: _Held | None, read: _Read) -> _Held | None:
        """``held`` (after the new clear point) with the changed runs of a
        delta ``read``; None when that does not give the runs the cache has
        (a run gone, or a changed one without its body)."""
        if held is None:
            return None
        cleared = read.cleared_ms
        runs = held.runs
        bodies = dict(held.bodies)
        size = held.size
        if cleared is not None and cleared != held.cleared_ms:
            runs = [(r, t) for r, t in runs if t > cleared]
            for run_id in set(bodies) - {r for r, _ in runs}:
                gone = bodies.pop(run_id)
                size -= len(gone.committed) + len(gone.open)
        new: list[tuple[str, int]] = []
        for run_id, first_ms in read.runs:
            body = read.bodies.get(run_id)
            if body is None:
                return None
            old = bodies.get(run_id)
            if old is None:
                new.append((run_id, first_ms))
            else:
                size -= len(old.committed) + len(old.open)
            bodies[run_id] = body
            size += len(body.committed) + len(body.open)
        if len(bodies) != read.total:
            return None
        # The session index's order: by first ms, then run id (new runs
        # usually come last: appended without sorting).
        if new and runs and _order(min(new, key=_order)) < _order(runs[-1]):
            runs = sorted([*runs, *new], key=_order)
        else:
            runs = [*runs, *sorted(new, key=_order)]
        return _Held(read.version, cleared, runs, bodies, size)

    def _hold(self, session_id: str, read: _Read) -> None:
        """Keep a whole read of the session from the cache (every body there)."""
        self._drop_held(session_id)
        if not read.cached or not read.version or len(read.bodies) != len(read.runs):
            return
        size = sum(len(b.committed) + len(b.open) for b in read.bodies.values())
        self._keep(session_id, _Held(read.version, read.cleared_ms, read.runs, read.bodies, size))

    def _keep(self, session_id: str, held: _Held) -> None:
        self._drop_held(session_id)
        if held.size > self._held_max:
            return
        self._held[session_id] = held
        self._held_size += held.size
        while self._held_size > self._held_max:
            _, dropped = self._held.popitem(last=False)
            self._held_size -= dropped.size

    def _drop_held(self, session_id: str) -> None:
        dropped = self._held.pop(session_id, None)
        if dropped is not None:
            self._held_size -= dropped.size

    async def _history(
        self, session_id: str, after_ms: int | None, turns: int | None, *, known: str = ""
    ) -> tuple[_Read, list[RunRecord]]:
        """``history``, and the first read (with ``known``: when the session's
        version is still that, nothing is read: no records)."""
        if turns is None:
            read = await self._read(session_id)
            kept = [(r, t) for r, t in read.runs if after_ms is None or t > after_ms]
            messages = await self._messages(read, [r for r, _ in kept])
            return read, [RunRecord(r, t, messages[r]) for r, t in kept]
        # Only the last runs that hold the last ``turns`` turns, read from the end:
        # the newest ``take`` with their messages in one call; the listing of the
        # runs before them only when those hold too few turns.
        take = max(turns, 1)
        read = await self._read(session_id, tail=take, known=known)
        if read.same or read.erased:
            return read, []
        # Runs are sorted by first time, so ``after_ms`` cuts a prefix.
        visible = [(r, t) for r, t in read.runs if after_ms is None or t > after_ms]
        batch = visible[-take:]
        older: list[tuple[str, int]] | None = visible[:-take]
        if not older and len(visible) == len(read.runs) < read.total:
            older = None  # runs before the listed ones: listed when needed
        out: list[RunRecord] = []
        found = 0
        while batch:
            messages = await self._messages(read, [r for r, _ in batch])
            records = [RunRecord(r, t, messages[r]) for r, t in batch]
            found += sum(starts_turn(m) for rec in records for m in rec.messages)
            out = records + out
            if found >= turns:
                break
            if older is None:
                older = [
                    (r, t)
                    for r, t in await self._older(session_id, read)
                    if after_ms is None or t > after_ms
                ]
            take *= 2
            batch, older = older[-take:], older[:-take]
        return read, out

    async def find_run(self, run_id: str) -> KnownRun | None:
        _, runs, cache = self._ready()
        head = (await cache.store.heads(await self._live(), [run_id]))[run_id]
        if head.meta is not None:
            return KnownRun(run_id, head.meta.session_id)
        try:
            return KnownRun(run_id, (await runs.get(run_id)).session_id)
        except NotFoundError:
            return None

    async def erase(self, session_id: str, run_ids: Sequence[str]) -> None:
        if self._redis is None:
            raise NotStartedError("the backend is not started")
        keys = self._keys.generation(await self._live())
        names = [keys.session(session_id)]
        for run_id in run_ids:
            names += [keys.meta(run_id), keys.body(run_id)]
            self._sources.pop(run_id, None)
        self._drop_held(session_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(*names)
        # Its cached data changed: a reader holding the session reads it again.
        pipe.hincrby(keys.versions, session_id, 1)
        await pipe.execute()

    async def keep_for(self, session_id: str, run_ids: Sequence[str], ttl: int) -> None:
        if self._redis is None:
            raise NotStartedError("the backend is not started")
        keys = self._keys.generation(await self._live())
        pipe = self._redis.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.expire(keys.body(run_id), ttl)
        await pipe.execute()

    async def idle_sessions(self, before: datetime, limit: int = 500) -> list[SessionInfo]:
        index, _, _ = self._ready()
        page = await index.list(status="active", until=before, limit=limit)
        return [info_of(row) for row in page.items]

    # -- listeners ---------------------------------------------------------------------------

    def listen(self, session_id: str, listener: Listener) -> None:
        self._watcher.add(session_id, listener)

    def unlisten(self, session_id: str, listener: Listener) -> None:
        self._watcher.remove(session_id, listener)
