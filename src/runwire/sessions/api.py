"""``AsyncSession``: the session API agent frameworks expect, on the log.

Contract:
- ``AsyncSession(session_id=None, user_id=None, ttl=None, settings=None)``:
  with no id one is generated (``session.session_id``). Opening (``async
  with``, ``open()``, or the first call) publishes ``session_created`` once,
  for a new session; re-opening an existing one publishes nothing. A session
  of another user (or tenant), or a deleted one, is
  :class:`~runwire.errors.NotFoundError`, exactly like an unknown id that
  cannot be created. On the log backend, re-opening a session the backend
  already described as the caller's (its owner declared, not a fork) asks
  the transcript cache only whether it is still there and not deleted (a
  declared owner never changes).
- ``add_message(role, content)`` / ``add_messages([...])`` (one atomic batch)
  / ``get_messages(limit=None)``: the session's history across its runs, in
  order; ``limit`` counts whole turns from the end, so a tool_use is never
  cut from its tool_result. Which run a message goes to:
  :mod:`runwire.sessions.planning`. Input rules: :mod:`runwire.sessions.content`.
- ``get_messages(as_of=N)``: the history as it was at the end of turn ``N``
  (time travel, read from the log on the log backend).
- Turns: every run the API opens is one turn (``turn_id`` = its run id, on
  each of its events). ``turns()`` lists them since the last clear (number,
  id, run, start, messages, token usage), ``get_messages(turns=[...])`` gives
  those turns' messages, ``runs_of_turn(turn_id)`` the runs holding one.
- Single-writer (:mod:`runwire.sessions.versions`): ``version()`` and
  ``get_versioned(limit=None)`` (the version, then the history);
  ``add_message(..., expected_version=V)`` / ``add_messages(...,
  expected_version=V)`` write only when the session is still at ``V`` and no
  other writer holds it, and return the new version; otherwise
  :class:`~runwire.sessions.errors.SessionBusy` (nothing written).
- ``fork(turn=N)`` / ``fork(at_run=RUN, at_offset=OFFSET)``: a new session of
  the caller sharing this one's history up to the end of turn ``N``, or up to
  its run ``RUN`` as of log offset ``OFFSET`` (never inside an open tool call;
  ``fork_points(RUN)`` lists where a cut may go), without copying it;
  ``branches()`` lists the forks (:mod:`runwire.sessions.forks`; the log
  backend and the in-memory twin).
- Read-your-writes: every write returns once the projections that serve the
  reads have applied it, so the next read in any process shows it.
- On the log backend ``get_messages`` reads the transcript cache only (the
  clear point and deletion come with the runs); the owner is checked when
  the session is opened, and never changes.
- ``clear()`` publishes ``session_cleared``: later reads start empty, the log
  keeps the history. ``set(key, value)`` / ``get(key)`` / ``metadata()``:
  JSON metadata as ``session_metadata_set`` events (``None`` removes a key).
- ``end()`` publishes ``session_ended``; an ended session is read-only
  (:class:`~runwire.sessions.errors.SessionEndedError` on writes) but can be
  exported and deleted. ``delete()`` erases it: tombstones for its
  session-scope memory on the compacted memory topic, ``session_deleted``
  (so no rebuild brings it back), cached transcripts removed.
- ``on(SessionEvent.MESSAGE_ADDED | ..., callback)`` / ``off(...)``: callbacks
  fed from the log, so they see what other processes write too.
- ``ttl`` (seconds or a timedelta) is how long the session's transcripts stay
  cached in Redis after their last use; expired ones are rebuilt from the log
  on the next read that needs them (a process holding the session unchanged
  serves its own copy). Nothing is ever lost to a TTL.
- Framework items (what an agent framework's own session stores, kept
  verbatim beside the canonical transcript; :mod:`runwire.transcript.items`):
  ``add_items(framework, [(item, canonical payloads), ...])`` (one atomic
  batch, :func:`~runwire.sessions.planning.plan_items`), ``items()`` (the
  live ones since the last clear, oldest first), ``pop_item()`` (an
  ``item_popped`` event: the newest item, or None, taken back along with
  the canonical events that stand for it).
- Memory: ``store_memory`` / ``get_memory`` / ``delete_memory`` /
  ``list_memory`` default to this session's scope (``scope="session"``).
- ``async with`` closes what the session opened (connections, listeners),
  even on an exception; every write was already durable when it returned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from runwire.contract import ids
from runwire.contract.events import (
    Event,
    EventPayload,
    ItemPopped,
    MemoryScope,
    SessionCleared,
    SessionCreated,
    SessionEnded,
    SessionMetadataSet,
    now,
)
from runwire.errors import NotFoundError, RunwireError
from runwire.memory.api import AsyncMemory
from runwire.memory.checks import (
    Caller,
    InputError,
    check_key,
    of_process,
    owns,
    require_json,
)
from runwire.memory.protocol import MemoryBackend, MemoryEntry
from runwire.projections.transcripts.history import Turn, cut_at_turn
from runwire.sessions.admin import destroy_keys, erase_session, key_store_of
from runwire.sessions.callbacks import Callback, Callbacks
from runwire.sessions.content import to_message, to_messages
from runwire.sessions.errors import RunBusyError, SessionEndedError, WriteRefusedError
from runwire.sessions.export import ImportResult, export_session, import_session
from runwire.sessions.forks import ForkingBackend, ForkPoint, fork_points, plan
from runwire.sessions.names import FROM_DOCUMENT, SYSTEM_KEY, FromDocument
from runwire.sessions.planning import (
    PRODUCER,
    RunTail,
    millis,
    plan_items,
    plan_messages,
    session_event,
)
from runwire.sessions.protocol import SessionBackend, SessionEvent, SessionInfo, SessionItem
from runwire.sessions.versions import Versioned, check_version, read_versioned, write_at
from runwire.transcript.messages import Message
from runwire.transcript.turns import last_turns

if TYPE_CHECKING:
    from runwire.settings import Settings


__all__ = ["FROM_DOCUMENT", "SYSTEM_KEY", "AsyncSession", "FromDocument", "ttl_seconds"]


def ttl_seconds(ttl: int | float | timedelta | None) -> int | None:
    """A TTL as whole seconds (at least 1), or None."""
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        seconds = ttl.total_seconds()
    elif isinstance(ttl, int | float) and not isinstance(ttl, bool):
        seconds = float(ttl)
    else:
        raise InputError("ttl", f"seconds or a timedelta, not {type(ttl).__name__}")
    if seconds < 1:
        raise InputError("ttl", f"at least one second, not {seconds}")
    return int(seconds)


BUSY_TIMEOUT = 10.0
"""How long a write keeps reading and planning again while its run is busy."""


async def _until_not_busy(attempt: Callable[[], Awaitable[None]]) -> None:
    """Run ``attempt`` (read the session, plan, write) again while the run it
    appends to is busy (:class:`RunBusyError`), up to :data:`BUSY_TIMEOUT`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BUSY_TIMEOUT
    delay = 0.001
    while True:
        try:
            await attempt()
            return
        except RunBusyError as e:
            if loop.time() > deadline:
                raise WriteRefusedError(
                    f"{e} (still so after {BUSY_TIMEOUT:.0f}s of reading again)"
                ) from e
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


def default_backend(settings: Settings | None) -> SessionBackend:
    from runwire.sessions.log_backend import LogBackend
    from runwire.settings import Settings

    return LogBackend(settings if settings is not None else Settings())


class _NotOpen:
    pass


class _Open:
    pass


class _Closed:
    def __init__(self, why: str) -> None:
        self.why = why


class AsyncSession:
    """One conversation over time; see the module contract."""

    def __init__(
        self,
        session_id: str | None = None,
        *,
        user_id: str | None = None,
        tenant: str | None = None,
        ttl: int | float | timedelta | None = None,
        settings: Settings | None = None,
        backend: SessionBackend | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if session_id is not None and (not isinstance(session_id, str) or not session_id):
            raise InputError("session_id", "a non-empty string")
        self.session_id: str = session_id or ids.new_event_id()
        self.caller = Caller(user_id=user_id, tenant=tenant)
        self.ttl = ttl_seconds(ttl)
        self._generated = session_id is None
        self._settings = settings
        self._backend = backend
        self._own_backend = backend is None
        self._initial = dict(require_json(dict(metadata or {}), "metadata"))
        for key in self._initial:
            check_key(key, "metadata")
        self._state: _NotOpen | _Open | _Closed = _NotOpen()
        self._opening = asyncio.Lock()
        # Writes of one session object happen one at a time, in call order: each
        # plans against what the previous one wrote.
        self._writing = asyncio.Lock()
        self._owned = False
        """The session index showed the session as the caller's: later writes
        plan on the backend's one read (:meth:`_write_point`)."""
        self._callbacks = Callbacks()
        self._listening = False
        self._memory: AsyncMemory | None = None
        self.created = False
        """True when opening this object created the session."""
        self.import_result: ImportResult | None = None
        """What :meth:`import_data` did, on a session it returned."""
        self.parent_session_id: str | None = None
        self._fork_info: SessionInfo | None = None
        """A fork's info as opened: its fork point never changes."""
        """The session this one was forked from (see :meth:`fork`), once open."""

    def __repr__(self) -> str:
        return f"AsyncSession({self.session_id!r}, user_id={self.caller.user_id!r})"

    @property
    def user_id(self) -> str | None:
        return self.caller.user_id

    @property
    def tenant(self) -> str | None:
        return self.caller.tenant

    @property
    def backend(self) -> SessionBackend:
        if self._backend is None:
            self._backend = default_backend(self._settings)
        return self._backend

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> Self:
        """Connect and create the session if it is new (see the module contract)."""
        if isinstance(self._state, _Open):
            return self
        async with self._opening:
            if isinstance(self._state, _Closed):
                raise RunwireError(f"session {self.session_id} is closed ({self._state.why})")
            if isinstance(self._state, _Open):
                return self
            self.caller = of_process(self.caller, self.backend)
            # Open only as its owner's (checked below): the session is the caller's
            # tenant's, and the listeners hear no other tenant's changes.
            self._callbacks.tenant = self.caller.tenant
            if self._own_backend:
                await self.backend.start()
            try:
                if await self._reopens():
                    # Described here before as the caller's, and the cache shows it
                    # live: no session-index query (see LogBackend.reopens).
                    self._state = _Open()
                    return self
                info = None if self._generated else await self.backend.describe(self.session_id)
                if info is None:
                    await self._publish(
                        SessionCreated(user_id=self.caller.user_id, metadata=self._initial)
                    )
                    # The first session_created in the session's partition owns it:
                    # read back who won (the write returned once the index applied it).
                    info = await self.backend.describe(self.session_id)
                    self.created = owns(self.caller, info)
                if not owns(self.caller, info):
                    raise NotFoundError(f"no session {self.session_id!r} for this caller")
                # A session forks when it is created, never later.
                self.parent_session_id = info.parent_session_id if info else None
                self._fork_info = info if self.parent_session_id is not None else None
            except BaseException:
                if self._own_backend:
                    await self.backend.stop()
                self._state = _Closed("it failed to open")
                raise
            self._state = _Open()
        return self

    async def _reopens(self) -> bool:
        from runwire.sessions.log_backend import LogBackend

        backend = self.backend
        return (
            not self._generated
            and isinstance(backend, LogBackend)
            and await backend.reopens(self.session_id, self.caller)
        )

    async def close(self) -> None:
        """Stop callbacks and close what this session opened; idempotent."""
        state, self._state = self._state, _Closed("close() was called")
        if isinstance(state, _Closed):
            self._state = state
            return
        if self._listening:
            self.backend.unlisten(self.session_id, self._callbacks)
            self._listening = False
        await self._callbacks.drain()
        if isinstance(state, _Open) and self._own_backend:
            await self.backend.stop()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- internals -----------------------------------------------------------------

    async def _ready(self) -> SessionBackend:
        if not isinstance(self._state, _Open):
            await self.open()
        return self.backend

    async def _publish(self, *payloads: Any, labels: dict[str, str] | None = None) -> None:
        token = ids.new_event_id()
        events = [
            session_event(p, self.session_id, self.caller, token=token, index=i, labels=labels)
            for i, p in enumerate(payloads)
        ]
        await self.backend.write_session_events(events)

    def _mine(self, info: SessionInfo | None) -> SessionInfo:
        if info is None or not owns(self.caller, info):
            if info is not None and info.deleted:
                self._state = _Closed("the session was deleted")
            raise NotFoundError(f"no session {self.session_id!r} for this caller")
        return info

    async def info(self) -> SessionInfo:
        """The session as the session index sees it (status, metadata, times)."""
        backend = await self._ready()
        return self._mine(await backend.describe(self.session_id))

    async def _writable(self) -> SessionInfo:
        info = await self.info()
        if info.status == "ended":
            raise SessionEndedError(f"session {self.session_id} has ended; it is read-only")
        self._owned = True
        return info

    async def _write_point(self, backend: SessionBackend) -> tuple[int | None, RunTail | None]:
        """The clear point (ms) and tail a write plans on; raises as :meth:`_writable`.

        - The backend's one read of tail and state serves when this object's
          session index check showed the session to be the caller's, or the
          backend knows the session's declared owner and it is the caller
          (an owner declared never changes); else the session index is
          checked, beside reading the tail.
        """
        point = await backend.write_point(self.session_id)
        if point is not None and (
            self._owned or point.owner == (self.caller.user_id, self.caller.tenant)
        ):
            if point.deleted:
                self._state = _Closed("the session was deleted")
                raise NotFoundError(f"no session {self.session_id!r} for this caller")
            if point.ended:
                raise SessionEndedError(f"session {self.session_id} has ended; it is read-only")
            return point.cleared_ms, point.tail
        info, tail = await asyncio.gather(self._writable(), backend.tail(self.session_id))
        return (millis(info.cleared_at) if info.cleared_at else None), tail

    # -- messages --------------------------------------------------------------------

    async def add_message(
        self, role: str, content: Any, *, expected_version: int | None = None
    ) -> int | None:
        """Add one message: durable in the log on return, shown by this backend's
        ``get_messages`` at once and by other processes' once the projections
        have it (see :class:`~runwire.sessions.log_backend.LogBackend`).

        With ``expected_version``: only at that session version, as its one
        writer; returns the new version (:mod:`runwire.sessions.versions`).
        """
        return await self._add([to_message(role, content)], ["content"], expected_version)

    async def add_messages(
        self, messages: Sequence[Any], *, expected_version: int | None = None
    ) -> int | None:
        """Add messages as one atomic batch (Message, ``{"role", "content"}`` or pairs);
        ``expected_version`` as for :meth:`add_message`."""
        incoming = to_messages(messages)
        fields = [f"messages[{i}]" for i in range(len(incoming))]
        return await self._add(incoming, fields, expected_version)

    async def _add(
        self, incoming: Sequence[Any], fields: Sequence[str], expected: int | None = None
    ) -> int | None:
        if expected is not None:
            check_version(expected)
        async with self._writing:
            if expected is None:
                await _until_not_busy(lambda: self._add_now(incoming, fields))
                return None
            backend = await self._ready()
            await self._writable()
            return await write_at(
                backend,
                self.session_id,
                self.caller,
                expected,
                lambda: _until_not_busy(lambda: self._add_now(incoming, fields)),
            )

    async def version(self) -> int:
        """The session's version (writes committed under the single-writer fence)."""
        return (await self.info()).version

    async def get_versioned(self, limit: int | None = None) -> Versioned:
        """The session's version, then its history (``get_messages(limit)``): a write
        naming that version is refused if anything was committed since."""
        return await read_versioned(self.info, lambda: self.get_messages(limit))

    async def _add_now(self, incoming: Sequence[Any], fields: Sequence[str]) -> None:
        backend = await self._ready()
        cleared_ms, tail = await self._write_point(backend)
        systems = [i.system for i in incoming if i.system is not None]
        kept = [(i.message, f) for i, f in zip(incoming, fields, strict=True) if i.message]
        plan = None
        if kept:
            plan = plan_messages(
                session_id=self.session_id,
                caller=self.caller,
                tail=tail,
                cleared_ms=cleared_ms,
                messages=[m for m, _ in kept],
                fields=[f for _, f in kept],
                now=now(),
            )
        if systems:
            await self._publish(SessionMetadataSet(key=SYSTEM_KEY, value="\n\n".join(systems)))
        if plan is not None:
            await backend.write_run(plan.events, base=None if plan.new_run else tail)
            if self.ttl is not None:
                await backend.keep_for(self.session_id, [plan.run_id], self.ttl)

    async def get_messages(
        self,
        limit: int | None = None,
        *,
        as_of: int | None = None,
        turns: Sequence[str | int] | None = None,
    ) -> list[Message]:
        """The history since the last clear, cut to the last ``limit`` turns; with
        ``as_of=N``, as it was at the end of turn ``N`` (1-based, counted since the
        last clear), read from the log; with ``turns``, the messages of those turns
        only (by ``turn_id``, or by number), in order."""
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
            raise InputError("limit", f"a number of turns or None, not {limit!r}")
        if turns is not None:
            if limit is not None or as_of is not None:
                raise InputError("turns", "give turns alone, without limit or as_of")
            return await self._turn_messages(turns)
        backend = await self._ready()
        from runwire.sessions.log_backend import LogBackend

        if as_of is not None:
            if isinstance(backend, LogBackend):
                past = (await backend.history_at(await self.info(), as_of)).messages
            else:
                now_ = await self.get_messages()
                past = cut_at_turn(now_, as_of, f"session {self.session_id}")
            return last_turns(past, limit)

        if isinstance(backend, LogBackend):
            # The clear point and the deletion come with the runs from the cache:
            # no session-index query per read (the owner was checked at open and
            # never changes).
            seen = await backend.visible(self.session_id, turns=limit)
            if seen.deleted:
                self._state = _Closed("the session was deleted")
                raise NotFoundError(f"no session {self.session_id!r} for this caller")
            if self.ttl is not None and seen.run_ids:
                await backend.keep_for(self.session_id, seen.run_ids, self.ttl)
            if self.parent_session_id is not None and seen.cleared_ms is None:
                # A fork: the shared prefix, then its own runs. A clear since the
                # fork hides the prefix, and the read says whether there was one;
                # the fork point never changes: no session-index query per read.
                if self._fork_info is None or self._fork_info.cleared_at is not None:
                    self._fork_info = await self.info()
                return last_turns([*await backend.prefix(self._fork_info), *seen.messages], limit)
            return last_turns(seen.messages, limit)
        info, runs = await asyncio.gather(
            self.info(), backend.history(self.session_id, turns=limit)
        )
        after = millis(info.cleared_at) if info.cleared_at else None
        visible = [r for r in runs if after is None or r.first_ms > after]
        if self.ttl is not None and visible:
            await backend.keep_for(self.session_id, [r.run_id for r in visible], self.ttl)
        messages = [m for run in visible for m in run.messages]
        if self.parent_session_id is not None and isinstance(backend, ForkingBackend):
            messages = [*await backend.prefix(info), *messages]  # a fork: the shared prefix first
        return last_turns(messages, limit)

    # -- turns -----------------------------------------------------------------------

    async def turns(self) -> list[Turn]:
        """The turn list since the last clear, read from the log: number, ``turn_id``,
        run, start time, messages and token usage of each (log backend only)."""
        backend = await self._ready()
        from runwire.sessions.log_backend import LogBackend

        if not isinstance(backend, LogBackend):
            raise RunwireError(f"{type(backend).__name__} keeps no turns; use the log backend")
        try:
            return await backend.turns(await self.info())
        except NotFoundError:
            self._state = _Closed("the session was deleted")
            raise

    async def runs_of_turn(self, turn_id: str) -> list[str]:
        """The runs that hold turn ``turn_id``, in order (empty for an unknown turn)."""
        return list(dict.fromkeys(t.run_id for t in await self.turns() if t.turn_id == turn_id))

    async def _turn_messages(self, wanted: Sequence[str | int]) -> list[Message]:
        if isinstance(wanted, str) or not all(
            isinstance(w, str) or (isinstance(w, int) and not isinstance(w, bool)) for w in wanted
        ):
            raise InputError("turns", f"turn ids or numbers, not {wanted!r}")
        found = await self.turns()
        known = {t.turn_id for t in found} | {t.number for t in found}
        missing = [w for w in wanted if w not in known]
        if missing:
            raise InputError(
                "turns", f"session {self.session_id} has no turn {', '.join(map(str, missing))}"
            )
        keep = set(wanted)
        return [m for t in found if t.turn_id in keep or t.number in keep for m in t.messages]

    # -- forks -------------------------------------------------------------------------

    def _forking(self, backend: SessionBackend) -> ForkingBackend:
        if not isinstance(backend, ForkingBackend):
            raise RunwireError(f"{type(backend).__name__} cannot fork")
        return backend

    async def fork(
        self,
        *,
        turn: int | None = None,
        at_run: str | None = None,
        at_offset: int | None = None,
        session_id: str | None = None,
    ) -> AsyncSession:
        """A new session (``session_id``, or a generated id) of this caller that
        begins with this one's history up to a point, shared, not copied
        (:mod:`runwire.sessions.forks`); returned open. The point: the end of
        ``turn``, or offset ``at_offset`` of the run ``at_run`` of this session's
        history (the runs before it, then it as of that offset; never inside an
        open tool call, see :meth:`fork_points`). Bad points are refused before
        anything is written (:class:`~runwire.errors.InputError` naming the field)."""
        backend = self._forking(await self._ready())
        info = await self.info()
        line = await backend.lineage(info)
        forked = await plan(
            backend.fork_log(), info, line, turn=turn, at_run=at_run, at_offset=at_offset
        )
        if session_id is not None and await self.backend.describe(session_id) is not None:
            raise InputError("session_id", f"session {session_id!r} exists; a fork is new")
        # The fork lives as long as its own object: it shares a backend only when
        # this session was given one (then the caller owns it).
        child = AsyncSession(
            session_id,
            user_id=self.caller.user_id,
            tenant=self.caller.tenant,
            ttl=self.ttl,
            settings=self._settings,
            backend=None if self._own_backend else self.backend,
        )
        await child.backend.start()
        await child._publish(
            SessionCreated(user_id=self.caller.user_id, metadata=info.metadata), forked
        )
        child._generated = False  # created just now: open() only reads it back
        await child.open()
        child.created = True
        return child

    async def fork_points(self, run_id: str) -> list[ForkPoint]:
        """The records of ``run_id`` (a run of this session's history) with their log
        offsets, each saying whether :meth:`fork` may cut there (``whole``)."""
        backend = self._forking(await self._ready())
        line = await backend.lineage(await self.info())
        if not isinstance(run_id, str) or run_id not in line.run_ids:
            raise InputError("run_id", f"run {run_id!r} is not in session {self.session_id}")
        found = await backend.fork_log().records_now([run_id], line.bounds, skip_erased=True)
        return fork_points(run_id, found.get(run_id, []))

    async def branches(self) -> list[SessionInfo]:
        """The caller's sessions forked from this one (forks of forks: ask each fork)."""
        backend = self._forking(await self._ready())
        await self.info()
        return await backend.forks_of(self.session_id, self.caller.user_id)

    # -- framework items -----------------------------------------------------------------

    async def add_items(
        self, framework: str, items: Sequence[tuple[Any, Sequence[EventPayload]]]
    ) -> None:
        """Keep a framework's items (each with the canonical payloads that stand for
        it) as one atomic batch: durable on return, shown by this backend's
        ``items()`` at once and by other processes' once the projections have it."""
        if not items:
            return
        async with self._writing:
            await _until_not_busy(lambda: self._add_items_now(framework, items))

    async def _add_items_now(
        self, framework: str, items: Sequence[tuple[Any, Sequence[EventPayload]]]
    ) -> None:
        backend = await self._ready()
        cleared_ms, tail = await self._write_point(backend)
        plan = plan_items(
            session_id=self.session_id,
            caller=self.caller,
            tail=tail,
            cleared_ms=cleared_ms,
            framework=framework,
            items=items,
            now=now(),
        )
        await backend.write_run(plan.events, base=None if plan.new_run else tail)
        if self.ttl is not None:
            await backend.keep_for(self.session_id, [plan.run_id], self.ttl)

    async def items(self, limit: int | None = None) -> list[SessionItem]:
        """The session's live framework items since the last clear, oldest first
        (with ``limit``, at least the last ``limit`` of them)."""
        backend = await self._ready()
        from runwire.sessions.log_backend import LogBackend

        if isinstance(backend, LogBackend):
            try:
                found = await backend.items(self.session_id, limit=limit)
            except NotFoundError:
                self._state = _Closed("the session was deleted")
                raise
        else:
            info = await self.info()
            after = millis(info.cleared_at) if info.cleared_at else None
            found = await backend.items(self.session_id, after, limit)
        if self.ttl is not None and found:
            await backend.keep_for(self.session_id, sorted({i.run_id for i in found}), self.ttl)
        return found

    async def pop_item(self) -> SessionItem | None:
        """Take the newest framework item back (an ``item_popped`` event); None when
        there is none. Another writer popping the same item first: the next one."""
        async with self._writing:
            for _ in range(5):
                await self._writable()
                found = await self.items(limit=1)
                if not found:
                    return None
                last = found[-1]
                event = Event.create(
                    ItemPopped(item_event_id=last.event_id),
                    run_id=last.run_id,
                    session_id=self.session_id,
                    user_id=self.caller.user_id,
                    tenant=self.caller.tenant,
                    producer=PRODUCER,
                )
                try:
                    await self.backend.write_run([event])
                except WriteRefusedError:
                    continue  # someone else took it back first: read again
                return last
            raise WriteRefusedError(
                f"session {self.session_id}: pop_item lost to other writers five times"
            )

    async def clear(self) -> None:
        """Later reads start empty; the log keeps everything (``session_cleared``)."""
        async with self._writing:
            await self._writable()
            await self._publish(SessionCleared())

    # -- metadata ----------------------------------------------------------------------

    async def set(self, key: str, value: Any) -> None:
        """Set metadata ``key`` to a JSON ``value`` (``None`` removes it)."""
        check_key(key)
        require_json(value, "value")
        async with self._writing:
            await self._writable()
            await self._publish(SessionMetadataSet(key=key, value=value))

    async def get(self, key: str, default: Any = None) -> Any:
        """Metadata ``key``, or ``default``."""
        check_key(key)
        return (await self.metadata()).get(key, default)

    async def metadata(self) -> dict[str, Any]:
        """All metadata (the system instructions under ``"system"``)."""
        return (await self.info()).metadata

    # -- lifecycle events -----------------------------------------------------------

    async def end(self, reason: str | None = None) -> None:
        """End the session (read-only from now on); ending twice is a no-op."""
        async with self._writing:
            info = await self.info()
            if info.status != "ended":
                await self._publish(SessionEnded(reason=reason))

    async def delete(self, *, erase: bool = False) -> None:
        """Erase the session (see the module contract); the object is closed after it.

        ``erase=True`` (sealing on) destroys its data keys too: its events on
        the log can no longer be read by anyone (:func:`~runwire.sessions.admin.destroy_keys`).
        """

        backend = await self._ready()
        info = self._mine(await backend.describe(self.session_id))
        if erase:
            key_store_of(backend)  # refuse before erasing anything when sealing is off
        await erase_session(backend, info, self.caller)
        if erase:
            await destroy_keys(backend, self.session_id, self.caller)
        await self.close()
        self._state = _Closed("the session was deleted")

    # -- callbacks -----------------------------------------------------------------------

    def on(self, kinds: SessionEvent, callback: Callback) -> Callback:
        """Call ``callback(change)`` for every change of these kinds, from the log."""
        if not isinstance(kinds, SessionEvent):
            raise InputError("kinds", "a SessionEvent (combine with |)")
        if not callable(callback):
            raise InputError("callback", "not callable")
        self._callbacks.add(kinds, callback)
        if not self._listening:
            self.backend.listen(self.session_id, self._callbacks)
            self._listening = True
        return callback

    def off(self, kinds: SessionEvent | None = None, callback: Callback | None = None) -> int:
        """Remove callbacks (all kinds / all callbacks when not given); returns how many."""
        removed = self._callbacks.remove(kinds, callback)
        if not self._callbacks and self._listening:
            self.backend.unlisten(self.session_id, self._callbacks)
            self._listening = False
        return removed

    # -- export / import -------------------------------------------------------------------

    async def export(self) -> dict[str, Any]:
        """A versioned JSON document of the session (see :mod:`runwire.sessions.export`)."""

        backend = await self._ready()
        return await export_session(backend, await self.info())

    @classmethod
    async def import_data(
        cls,
        doc: Mapping[str, Any],
        *,
        keep_ids: bool = False,
        user_id: str | FromDocument | None = FROM_DOCUMENT,
        tenant: str | FromDocument | None = FROM_DOCUMENT,
        ttl: int | float | timedelta | None = None,
        settings: Settings | None = None,
        backend: SessionBackend | None = None,
    ) -> AsyncSession:
        """Recreate an exported session; returns it, open (see :mod:`runwire.sessions.export`).

        It belongs to ``user_id`` / ``tenant`` (by default the document's).
        Importing the same document again changes nothing and returns the
        session the first import made.
        """

        session = cls(ttl=ttl, settings=settings, backend=backend)
        if session._own_backend:
            await session.backend.start()
        try:
            result: ImportResult = await import_session(
                session.backend, doc, user_id=user_id, tenant=tenant, keep_ids=keep_ids
            )
        except BaseException:
            if session._own_backend:
                await session.backend.stop()
            raise
        session.caller = result.owner
        session.session_id = result.session_id
        session.created = result.created
        session._generated = False
        session._state = _Open()
        session.import_result = result
        return session

    # -- memory ------------------------------------------------------------------------------

    def _memory_api(self) -> AsyncMemory:
        if self._memory is None:
            backend = self.backend
            if not isinstance(backend, MemoryBackend):
                raise RunwireError(f"{type(backend).__name__} keeps no memory")
            self._memory = AsyncMemory(
                user_id=self.caller.user_id,
                tenant=self.caller.tenant,
                backend=backend,
                sessions=backend,
            )
        return self._memory

    def _owner(self, scope: MemoryScope, owner: str | None) -> str | None:
        return self.session_id if scope == "session" and owner is None else owner

    async def store_memory(
        self, key: str, value: Any, scope: MemoryScope = "session", owner: str | None = None
    ) -> None:
        """Store a memory entry (this session's by default); see :mod:`runwire.memory.api`."""
        await self._ready()
        await self._memory_api().store_memory(key, value, scope, self._owner(scope, owner))

    async def get_memory(
        self,
        key: str,
        scope: MemoryScope = "session",
        owner: str | None = None,
        default: Any = None,
    ) -> Any:
        await self._ready()
        return await self._memory_api().get_memory(key, scope, self._owner(scope, owner), default)

    async def delete_memory(
        self, key: str, scope: MemoryScope = "session", owner: str | None = None
    ) -> bool:
        await self._ready()
        return await self._memory_api().delete_memory(key, scope, self._owner(scope, owner))

    async def list_memory(
        self,
        scope: MemoryScope = "session",
        owner: str | None = None,
        prefix: str | None = None,
        limit: int = 1000,
    ) -> list[MemoryEntry]:
        await self._ready()
        return await self._memory_api().list_memory(scope, self._owner(scope, owner), prefix, limit)
