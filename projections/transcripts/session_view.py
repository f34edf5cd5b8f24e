"""A session's history read from the transcript cache, for its owner: the read model's
session reader.

Contract (:class:`SessionView`):
- ``visible(session_id, owner, turns=None)``: the owner's runs of the session
  after its clear point (the newest holding the last ``turns`` turns, all
  when None) with their messages in order, or ``deleted``. One script call
  to Redis (:mod:`~runwire.projections.transcripts.session_read`) gives runs,
  bodies, clear point, deletion and the session's version; no Postgres query
  unless the cache lost the session (a flush), when the run-status store
  lists the runs and each is rebuilt from the log. A tail read of a session
  nothing is held of is served by that one call when it can (every body
  there, enough turns listed), its bodies decoded in one validation call.
- A session read whole is *held* while its version is unchanged: the next
  read names that version and the cache sends only a header (or, after a
  change, only the changed runs, merged into what is held). Held sessions
  and decoded runs are bounded by ``decoded_bytes``.
- ``history(session_id, owner, after_ms, turns)`` and ``tail(session_id,
  owner)``: the same reads as records; ``owner`` (the session's, from the
  session index) keeps every other user's run out.
- ``write_view(session_id, owner)``: the tail with the session's clear point,
  deletion and end, in the same one script call: what a write plans on,
  with no session-index query (None when the cache cannot say).
- ``holds_live(session_id, owner)``: the cache holds the session and it is not
  erased (one script call, header only): what a re-open checks when the
  owner is already known (owners never change).
- ``items(session_id, owner)``: the framework items of the owner's visible
  runs (:mod:`runwire.transcript.items`), oldest first, or ``deleted``: the
  runs' ids and the clear point in one script call (no messages), then each
  run's stored item state in one pipelined read; a run whose body expired is
  rebuilt from the log first.
- Reads and writes the namespace of its cache's tenant (``cache.tenant``,
  :mod:`~runwire.projections.transcripts.keys`), except that a session read
  naming an ``owner`` of another tenant (a shared process reading a
  tenant's session as the admin) reads that tenant's namespace
  (:meth:`SessionView.for_tenant`): a session's runs are kept under its
  owner's tenant. A tenant process's owners are its own tenant's (its
  session index shows no other).
- ``erase`` drops a session's cache entries (the log keeps its events);
  ``keep_for`` sets the TTL of runs' cached transcripts; ``taken`` says
  whether the cache applied a run up to an offset, ``applied`` the same once
  its projector passed a position (None before).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from runwire.errors import NotFoundError
from runwire.log import LogPosition, TopicPartition
from runwire.projections.runs.reader import RunStore
from runwire.projections.runtime.tenancy import NO_TENANT, Scope
from runwire.projections.sessions.owner import Owner
from runwire.projections.sessions.reader import SessionIndex
from runwire.projections.transcripts.body import stored_items
from runwire.projections.transcripts.keys import Keyspace, owner_tag
from runwire.projections.transcripts.reader import TranscriptCache
from runwire.projections.transcripts.session_read import DecodedRuns, SessionReader, StoredMessages
from runwire.projections.transcripts.store import RunHead, Slot
from runwire.transcript.messages import Message
from runwire.transcript.turns import starts_turn

__all__ = ["RunItems", "RunRecord", "SessionView", "Visible", "WriteView"]


@dataclass(frozen=True, slots=True)
class RunItems:
    """The framework items of a session's visible runs, or ``deleted``."""

    runs: list[tuple[str, list[dict[str, Any]]]]
    """Per run, its live items as stored: ``event_id``, ``framework``, ``item``..."""
    deleted: bool = False


@functools.lru_cache(maxsize=1024)
def _tag(owner: Owner | None) -> str:
    """The cache's tag of ``owner`` ('' reads every run: a session no index holds);
    kept, as it was a JSON dump on every read."""
    return "" if owner is None else owner_tag(owner.user_id, owner.tenant)


def _touched(version: str) -> bool:
    """Whether a session read's ``<generation>:<version>`` says a commit touched the
    session in that generation (else the cache cannot say what it is)."""
    return version.rpartition(":")[2] not in ("", "0")


def _took(head: RunHead, offset: int) -> bool:
    """Whether the cache took a run's event at ``offset``: it applied the run that
    far, or it does not know the run (erased, expired)."""
    return head.meta is None or head.meta.last >= offset


def _millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run of a session with its canonical messages."""

    run_id: str
    first_ms: int
    messages: list[Message] = field(default_factory=list)


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
    ended: bool = False


@dataclass(frozen=True, slots=True)
class WriteView:
    """What a write is planned on, from one read of the cache: the newest run
    (None: none) and the session's clear point, deletion and end."""

    tail: RunRecord | None
    cleared_ms: int | None
    deleted: bool
    ended: bool


@dataclass(frozen=True, slots=True)
class Visible:
    """A session's history as a read sees it: its runs after the clear point
    and their messages in order (a new list), or ``deleted``."""

    run_ids: list[str]
    messages: list[Message]
    deleted: bool = False
    firsts: list[int] = field(default_factory=list)
    """Each run's first ms (what orders the session's runs), as ``run_ids``."""
    counts: list[int] = field(default_factory=list)
    """How many of ``messages`` each run holds, in order, as ``run_ids``."""
    cleared_ms: int | None = None
    """The clear point the read honoured (runs at or before it are left out)."""

    @classmethod
    def of(cls, records: Sequence[RunRecord], cleared_ms: int | None = None) -> Visible:
        return cls(
            [r.run_id for r in records],
            [m for r in records for m in r.messages],
            firsts=[r.first_ms for r in records],
            counts=[len(r.messages) for r in records],
            cleared_ms=cleared_ms,
        )

    def records(self) -> list[RunRecord]:
        """The runs with their messages (new lists)."""
        out: list[RunRecord] = []
        at = 0
        for run_id, first_ms, count in zip(self.run_ids, self.firsts, self.counts, strict=True):
            out.append(RunRecord(run_id, first_ms, self.messages[at : at + count]))
            at += count
        return out


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


class SessionView:
    """Reads sessions from the transcript cache for their owners; see the module contract."""

    def __init__(
        self,
        cache: TranscriptCache,
        client: aioredis.Redis,
        key_prefix: str,
        *,
        index: SessionIndex,
        runs: RunStore,
        decoded_bytes: int = 4 << 20,
    ) -> None:
        self.cache = cache
        self._redis = client
        self._keys = Keyspace(key_prefix)
        self._tenant = cache.tenant
        self._looked_in: int | None = None
        """The generation :meth:`applied` looked in last."""
        self._reader = SessionReader(client, key_prefix, tenant=cache.tenant)
        self._index = index
        self._runs = runs
        self._decoded = DecodedRuns(decoded_bytes)
        self._held: OrderedDict[str, _Held] = OrderedDict()
        self._held_size = 0
        self._held_max = decoded_bytes
        self._prefix = key_prefix
        self._siblings: dict[str | None, SessionView] = {}

    @property
    def last_reply_bytes(self) -> int:
        """Bytes of strings in the cache's last session-read reply (what a read transferred)."""
        return self._reader.last_reply_bytes

    def for_tenant(self, tenant: str | None) -> SessionView:
        """The view of ``tenant``'s namespace (this one for its own tenant), on the
        same clients; its readers read as that tenant. Kept: made once per tenant."""
        if tenant == self._tenant:
            return self
        found = self._siblings.get(tenant)
        if found is None:
            scope: Scope = NO_TENANT if tenant is None else tenant
            found = SessionView(
                self.cache.for_tenant(tenant),
                self._redis,
                self._prefix,
                index=self._index.for_tenant(scope),
                runs=self._runs.for_tenant(scope),
                decoded_bytes=self._held_max,
            )
            found._decoded = self._decoded  # a body's bytes decide its messages: shareable
            self._siblings[tenant] = found
        return found

    def _of(self, owner: Owner | None) -> SessionView | None:
        """The view of ``owner``'s tenant when it is not this one's (a session is
        kept in its owner's tenant's namespace), else None."""
        if owner is None or owner.tenant == self._tenant:
            return None
        return self.for_tenant(owner.tenant)

    async def live(self) -> int:
        """The live generation of the cache."""
        generation = await self.cache.store.generation(Slot.LIVE)
        assert generation is not None
        return generation

    async def first_ms(self, run_ids: Sequence[str]) -> dict[str, int]:
        """When each run began (cache meta, else the run-status store); unknown runs left out."""
        runs, cache = self._runs, self.cache
        heads = await cache.store.heads(await self.live(), run_ids, tenant=self._tenant)
        out = {r: h.meta.first_ms for r, h in heads.items() if h.meta is not None}
        for run_id in run_ids:
            if run_id not in out:
                try:
                    out[run_id] = _millis((await runs.get(run_id)).started_at)
                except NotFoundError:
                    continue
        return out

    async def taken(self, run_id: str, offset: int) -> bool:
        """False when the cache knows the run but did not apply it up to ``offset``."""
        head = (await self.cache.store.heads(await self.live(), [run_id], tenant=self._tenant))[
            run_id
        ]
        return _took(head, offset)

    async def applied(self, run_id: str, position: LogPosition) -> bool | None:
        """Whether the cache took the run's event at ``position``: None while its
        projector has not passed the position, else as :meth:`taken` (one look:
        the position and the run's head together, in the generation looked in
        last time; the live one is read again only when that look says not yet,
        so a rebuild's switch costs one more look)."""
        tp = TopicPartition(position.topic, position.partition)
        store = self.cache.store
        cached = self._looked_in
        generation = cached if cached is not None else await self.live()
        snap = await store.snapshot(generation, [tp], [run_id], tenant=self._tenant)
        # Not yet, in the generation looked in last: it may no longer be the live one.
        if (
            snap.positions[tp] <= position.offset
            and cached is not None
            and (generation := await self.live()) != cached
        ):
            snap = await store.snapshot(generation, [tp], [run_id], tenant=self._tenant)
        self._looked_in = generation
        if snap.positions[tp] <= position.offset:
            return None
        return _took(snap.heads[run_id], position.offset)

    async def session_of(self, run_id: str) -> tuple[bool, str | None]:
        """(known, session id) of a run, from the cache or the run-status store."""
        head = (await self.cache.store.heads(await self.live(), [run_id], tenant=self._tenant))[
            run_id
        ]
        if head.meta is not None:
            return True, head.meta.session_id
        try:
            return True, (await self._runs.get(run_id)).session_id
        except NotFoundError:
            return False, None

    async def _read(
        self,
        session_id: str,
        owner: str,
        *,
        tail: int | None = None,
        known: str = "",
        visible: bool = False,
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
        read = await self._reader.read(
            session_id, tail=tail, known=known, visible=visible, owner=owner
        )
        gen, version, cleared = read.generation, read.version, read.cleared_ms
        ended = read.ended
        if read.same or read.erased:
            return _Read(
                gen, [], {}, set(), 0, {}, version, cleared, read.erased, read.same, ended=ended
            )
        if read.delta:
            listed = {r for r, _ in read.runs}
            return _Read(
                gen,
                read.runs,
                read.bodies,
                listed,
                read.total,
                {},
                version,
                cleared,
                delta=True,
                ended=ended,
            )
        if read.total:
            listed = {r for r, _ in read.runs}
            return _Read(
                gen, read.runs, read.bodies, listed, read.total, {}, version, cleared, ended=ended
            )
        run_ids = await self.cache.locator.session_runs(session_id, owner=owner)
        if not run_ids:
            return _Read(gen, [], {}, set(), 0, {}, version, cleared, ended=ended)
        filled = {r: await self.cache.get(r) for r in run_ids}
        times = await self.first_ms(run_ids)
        runs = [(r, times[r]) for r in run_ids if r in times]
        return _Read(gen, runs, {}, set(run_ids), len(runs), filled, cached=False)

    async def _older(self, session_id: str, owner: str, read: _Read) -> list[tuple[str, int]]:
        """The session's runs before those ``read`` listed (one more call)."""
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
            more = await self._reader.bodies(unasked, generation=read.generation)
            bodies = {**bodies, **more}
        out = self._decoded.decode({r: bodies[r] for r in run_ids if r in bodies})
        for run_id in run_ids:
            if run_id not in out:
                found = read.filled.get(run_id)
                out[run_id] = found if found is not None else await self.cache.get(run_id)
        return out

    async def tail(self, session_id: str, owner: Owner | None) -> RunRecord | None:
        """The owner's newest run of the session with its messages."""
        if (other := self._of(owner)) is not None:
            return await other.tail(session_id, owner)
        read = await self._read(session_id, _tag(owner), tail=1)
        if not read.runs:
            return None
        last, first = read.runs[-1]
        messages = await self._messages(read, [last])
        return RunRecord(last, first, messages[last])

    async def write_view(self, session_id: str, owner: Owner | None) -> WriteView | None:
        """The owner's newest run of the session with what a write must know of
        the session (clear point, deleted, ended), in one script call; None when
        the cache cannot say (no commit touched the session in the live
        generation, or a flush lost its index)."""
        if (other := self._of(owner)) is not None:
            return await other.write_view(session_id, owner)
        read = await self._read(session_id, _tag(owner), tail=1)
        if not read.cached or not _touched(read.version):
            return None
        tail = None
        if read.runs:
            last, first = read.runs[-1]
            tail = RunRecord(last, first, (await self._messages(read, [last]))[last])
        return WriteView(tail, read.cleared_ms, read.erased, read.ended)

    async def history(
        self,
        session_id: str,
        owner: Owner | None,
        after_ms: int | None = None,
        turns: int | None = None,
    ) -> list[RunRecord]:
        if (other := self._of(owner)) is not None:
            return await other.history(session_id, owner, after_ms, turns)
        return (await self._history(session_id, _tag(owner), after_ms, turns))[1]

    async def visible(
        self, session_id: str, owner: Owner | None, turns: int | None = None
    ) -> Visible:
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
        if (other := self._of(owner)) is not None:
            return await other.visible(session_id, owner, turns)
        tag = _tag(owner)
        held = self._held.get(session_id)
        if held is None and turns is not None:
            seen = await self._tail_visible(session_id, tag, turns)
            if seen is not None:
                return seen
        known = held.version if held is not None else ""
        if turns is None:
            read = await self._read(session_id, tag, known=known, visible=True)
        else:
            read, records = await self._history(session_id, tag, None, turns, known=known)
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
            read = await self._read(session_id, tag, visible=True)
        if turns is None:
            runs = read.runs
            messages = await self._messages(read, [r for r, _ in runs])
            self._hold(session_id, read)
            records = [RunRecord(r, t, messages[r]) for r, t in runs]
        cleared = read.cleared_ms if read.cached else await self._index_cleared(session_id)
        if cleared is not None:
            records = [r for r in records if r.first_ms > cleared]
        return Visible.of(records, cleared)

    async def holds_live(self, session_id: str, owner: Owner | None) -> bool:
        """True when the cache holds the session (a commit touched it in the
        live generation) and it is not erased: the header of one script call,
        no run listed. False says nothing (the session index knows more)."""
        if (other := self._of(owner)) is not None:
            return await other.holds_live(session_id, owner)
        read = await self._reader.read(session_id, tail=0)
        return not read.erased and _touched(read.version)

    async def _tail_visible(self, session_id: str, owner: str, turns: int) -> Visible | None:
        """A tail read of a session this view holds nothing of, served by its
        one script call: the newest ``turns`` runs with their bodies, decoded
        together into one list. None when that call cannot serve alone (the
        cache lost the session's index, a body expired, or the listed runs
        hold fewer than ``turns`` turns while older runs are visible): the
        general path then reads (and rebuilds) as it always did."""
        read = await self._reader.read(session_id, tail=max(turns, 1), owner=owner)
        if read.erased:
            return Visible([], [], deleted=True)
        runs, bodies, cleared = read.runs, read.bodies, read.cleared_ms
        if not read.total or len(bodies) != len(runs):
            return None
        complete = len(runs) == read.total
        if cleared is not None and runs and runs[0][1] <= cleared:
            # Runs are in first-ms order: the clear point cuts a prefix, and
            # every older run is cleared too.
            runs = [(r, t) for r, t in runs if t > cleared]
            complete = True
        counts: list[int] = []
        messages = self._decoded.flat([bodies[r] for r, _ in runs], counts)
        if not complete and sum(map(starts_turn, messages)) < turns:
            return None
        return Visible(
            [r for r, _ in runs],
            messages,
            firsts=[t for _, t in runs],
            counts=counts,
            cleared_ms=cleared,
        )

    async def items(
        self, session_id: str, owner: Owner | None, limit: int | None = None
    ) -> RunItems:
        """The framework items of the session's visible runs (see the module contract);
        with ``limit``, at least the last ``limit`` items (the newest runs that hold
        them), read newest first."""
        if (other := self._of(owner)) is not None:
            return await other.items(session_id, owner, limit)
        tag = _tag(owner)
        read = await self._reader.runs(session_id, owner=tag)
        if read.erased:
            return RunItems([], deleted=True)
        generation = read.generation
        if read.total:
            cleared = read.cleared_ms
            run_ids = [r for r, t in read.runs if cleared is None or t > cleared]
        else:  # the cache lost the session's index (a flush): the full read rebuilds it
            seen = await self.visible(session_id, owner)
            if seen.deleted:
                return RunItems([], deleted=True)
            run_ids, generation = seen.run_ids, await self.live()
        if limit is None:
            return RunItems(await self._run_items(generation, run_ids))
        # Newest runs first, a batch at a time, until they hold ``limit`` items.
        out: list[tuple[str, list[dict[str, Any]]]] = []
        held, end, batch = 0, len(run_ids), max(limit, 1)
        while end > 0 and held < limit:
            start = max(0, end - batch)
            found = await self._run_items(generation, run_ids[start:end])
            out[:0] = found
            held += sum(len(items) for _, items in found)
            end, batch = start, batch * 2
        return RunItems(out)

    async def _run_items(
        self, generation: int, run_ids: Sequence[str]
    ) -> list[tuple[str, list[dict[str, Any]]]]:
        """Each run's live items from its stored state (``st``), in one pipelined
        read; a run whose body expired is rebuilt from the log first."""
        keys = self._keys.generation(generation, self._tenant)
        states: list[bytes | None] = []
        for attempt in range(3):
            async with self._redis.pipeline(transaction=False) as pipe:
                for run_id in run_ids:
                    pipe.hget(keys.body(run_id), "st")
                states = await pipe.execute()
            missing = [r for r, st in zip(run_ids, states, strict=True) if st is None]
            if not missing or attempt == 2:
                break
            for run_id in missing:
                await self.cache.get(run_id)  # rebuilds the expired body from the log
        out: list[tuple[str, list[dict[str, Any]]]] = []
        for run_id, st in zip(run_ids, states, strict=True):
            items = stored_items(st) if st is not None else []
            if items:
                out.append((run_id, items))
        return out

    async def _index_cleared(self, session_id: str) -> int | None:
        try:
            row = await self._index.get(session_id)
        except NotFoundError:
            return None
        return _millis(row.cleared_at) if row.cleared_at is not None else None

    def _held_visible(self, held: _Held, turns: int | None) -> Visible:
        """The held runs (after the clear point) with a new message list; for
        ``turns``, the newest runs that hold at least that many turn starts."""
        if turns is None:
            ids = [r for r, _ in held.runs]
            counts: list[int] = []
            messages = self._decoded.flat([held.bodies[r] for r in ids], counts)
            return Visible(
                ids,
                messages,
                firsts=[t for _, t in held.runs],
                counts=counts,
                cleared_ms=held.cleared_ms,
            )
        out: list[RunRecord] = []
        found = 0
        for run_id, first_ms in reversed(held.runs):
            run = self._decoded.decode({run_id: held.bodies[run_id]})[run_id]
            out.append(RunRecord(run_id, first_ms, run))
            found += sum(starts_turn(m) for m in run)
            if found >= max(turns, 1):
                break
        out.reverse()
        return Visible.of(out, held.cleared_ms)

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

    def forget(self, session_id: str) -> None:
        """Stop holding the session (its next read is whole), in every tenant."""
        self._drop_held(session_id)
        for sibling in self._siblings.values():
            sibling.forget(session_id)

    def _drop_held(self, session_id: str) -> None:
        dropped = self._held.pop(session_id, None)
        if dropped is not None:
            self._held_size -= dropped.size

    async def _history(
        self,
        session_id: str,
        owner: str,
        after_ms: int | None,
        turns: int | None,
        *,
        known: str = "",
    ) -> tuple[_Read, list[RunRecord]]:
        """``history``, and the first read (with ``known``: when the session's
        version is still that, nothing is read: no records)."""
        if turns is None:
            read = await self._read(session_id, owner)
            kept = [(r, t) for r, t in read.runs if after_ms is None or t > after_ms]
            messages = await self._messages(read, [r for r, _ in kept])
            return read, [RunRecord(r, t, messages[r]) for r, t in kept]
        # Only the last runs that hold the last ``turns`` turns, read from the end:
        # the newest ``take`` with their messages in one call; the listing of the
        # runs before them only when those hold too few turns.
        take = max(turns, 1)
        read = await self._read(session_id, owner, tail=take, known=known)
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
                    for r, t in await self._older(session_id, owner, read)
                    if after_ms is None or t > after_ms
                ]
            take *= 2
            batch, older = older[-take:], older[:-take]
        return read, out

    async def erase(self, session_id: str, run_ids: Sequence[str]) -> None:
        """Drop the session's cache entries now (the log keeps its events)."""
        keys = self._keys.generation(await self.live(), self._tenant)
        names = [keys.session(session_id)]
        for run_id in run_ids:
            names += [keys.meta(run_id), keys.body(run_id)]
        self._drop_held(session_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(*names)
        # Its cached data changed: a reader holding the session reads it again.
        pipe.hincrby(keys.versions, session_id, 1)
        await pipe.execute()

    async def keep_for(self, session_id: str, run_ids: Sequence[str], ttl: int) -> None:
        """Keep the runs' cached transcripts ``ttl`` seconds from now."""
        keys = self._keys.generation(await self.live(), self._tenant)
        pipe = self._redis.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.expire(keys.body(run_id), ttl)
        await pipe.execute()
