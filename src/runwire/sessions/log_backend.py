"""The session backend on the log: Kafka for writes, the projections for reads.

- Writes: session events to the session-events topic, a run's events as one
  record batch on its partition of the run-events topic
  (``Publisher.publish_message``), memory to the memory topic.
- Writes plan on one read of the transcript cache (:meth:`LogBackend.write_point`:
  the tail, clear point, deletion and end), once the session index has shown
  the session to be the caller's.
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
- Read-your-writes: a write returns once the broker has it (durable,
  acks=all) when the cache cannot refuse it - a new run (nobody else knows
  its id), or an append to a recorded run made under the run's claim
  (:mod:`~runwire.projections.transcripts.claims`: planned on the run's
  true state, nobody else appending until the cache has it; a busy or
  changed run raises :class:`~runwire.sessions.errors.RunBusyError`, and the
  Session API reads and plans again). This backend serves such writes until
  the transcript cache has them and confirms in the background that the
  cache (and the run-status store) took them
  (:mod:`~runwire.sessions.own_writes`; a failed confirmation is raised by
  the next operation on the session). Other processes see them once the
  projections have applied them, milliseconds later. Other writes wait
  until the projection that serves the matching read has applied their
  position (session index for session events, and the transcript cache too
  for a clear, an end or a deletion, after this backend's unconfirmed runs of the
  session; transcript cache for an append to someone else's run, checked
  after it lands: :class:`~runwire.sessions.errors.WriteRefusedError` when
  the cache did not take it; memory projection for memory). The projectors
  (``runs``, ``sessions``, ``transcripts``, ``memory``) must be running.
- ``keep_for`` sets the Redis TTL of the runs' cached transcripts; ``erase``
  deletes a session's cache entries (the log keeps its run events).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import redis.asyncio as aioredis

from runwire.contract.events import (
    Event,
    RunStarted,
    SessionCleared,
    SessionDeleted,
    SessionEnded,
)
from runwire.errors import NotFoundError, NotStartedError
from runwire.log import Position, Publisher, publish_retrying
from runwire.memory.checks import Caller
from runwire.memory.log_backend import LogMemoryBackend
from runwire.projections.runs.reader import RunStore
from runwire.projections.runtime.waiting import NotCaughtUpError
from runwire.projections.sessions.owner import Owner
from runwire.projections.sessions.reader import SessionIndex
from runwire.projections.transcripts.claims import Claim, RunClaims
from runwire.projections.transcripts.history import SessionAsOf, Turn
from runwire.projections.transcripts.reader import TranscriptCache
from runwire.projections.transcripts.session_view import SessionView, Visible
from runwire.sessions.errors import RunBusyError, WriteRefusedError
from runwire.sessions.forks import ForkLog, Lineage, history_at, history_of, lineage
from runwire.sessions.inmem import deleted_info, info_of
from runwire.sessions.own_writes import OwnWrites, Pending, merge
from runwire.sessions.planning import SOURCE_LABEL, RunTail, WritePoint, ledger_state, millis
from runwire.sessions.protocol import KnownRun, Listener, RunRecord, SessionInfo, SessionItem
from runwire.sessions.watcher import LogWatcher
from runwire.settings import Settings
from runwire.transcript.ledger import (
    TranscriptBuilder,
    TranscriptState,
    build_messages_from_events,
)
from runwire.transcript.messages import Message

__all__ = ["LogBackend", "Visible"]

log = logging.getLogger(__name__)
_CONFIRM_LATER = 0.02
"""How long a served write's confirmation lets the projections work before its
first look at them, unless someone settles the session first."""
_PREFIXES_HELD = 64
"""Fork prefixes a backend keeps decoded (least recently used out)."""


@dataclass(frozen=True, slots=True)
class _Declared:
    """A session's declared owner as describe saw it, and whether it had ended
    or was a fork then."""

    owner: Owner
    ended: bool
    fork: bool


class LogBackend(LogMemoryBackend):
    """A :class:`~runwire.sessions.protocol.SessionBackend` (and memory backend) on the stack.

    ``async with LogBackend(settings) as backend`` (or ``start()`` /
    ``stop()``); share one among many sessions of a process.
    ``decoded_bytes`` bounds the decoded transcripts kept between reads
    (:class:`~runwire.projections.transcripts.session_read.DecodedRuns`; 0
    decodes every read afresh), and, as much again, the stored messages of
    the sessions last read whole, served while their version holds (0: every
    read transfers the bodies).
    ``visible_to`` says whom a new run is visible to when a write returns:
    ``"writer"`` (the default: this backend, at once; other processes once the
    projections have it) or ``"everyone"`` (the write returns only once the
    transcript cache and the run-status store have it, so any reader anywhere
    sees it: what a service behind a load balancer wants).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        publisher: Publisher | None = None,
        wait_timeout: float = 10.0,
        decoded_bytes: int = 4 << 20,
        visible_to: Literal["writer", "everyone"] = "writer",
    ) -> None:
        super().__init__(settings, publisher=publisher, wait_timeout=wait_timeout)
        if visible_to not in ("writer", "everyone"):
            raise ValueError(f"visible_to: 'writer' or 'everyone', not {visible_to!r}")
        self.visible_to = visible_to
        self._redis: aioredis.Redis | None = None
        self._index: SessionIndex | None = None
        self._runs: RunStore | None = None
        self._view: SessionView | None = None
        self._decoded_bytes = decoded_bytes
        self._watcher = LogWatcher(settings)
        self._sources: dict[str, bool] = {}
        self._prefixes: OrderedDict[
            tuple[tuple[str, ...], tuple[tuple[str, int], ...]], tuple[list[str], list[Message]]
        ] = OrderedDict()
        """Forks' prefixes read from the log, with the runs they held (newest used last)."""
        self._owners: dict[str, Owner] = {}
        """Owner tag of each session described: reads list only its runs."""
        self._declared: dict[str, _Declared] = {}
        """What describe saw of each session with a declared owner (an owner
        declared never changes): writes naming it and re-opens of it need no
        session-index query."""
        self._own = OwnWrites()
        self._claims: RunClaims | None = None
        self._recording: dict[str, asyncio.Task[None]] = {}
        """Each run's claim offset being recorded (:meth:`_record_wrote`)."""

    async def _start_more(self) -> None:
        self._redis = aioredis.Redis.from_url(self.settings.redis_url)
        self._claims = RunClaims(
            self._redis, self.settings.redis_key_prefix, tenant=self.settings.tenant
        )
        self._index = SessionIndex(self.pool, self.settings)
        self._runs = RunStore(self.pool, self.settings)
        await self._index.prepare()
        await self._runs.prepare()
        cache = TranscriptCache(self.settings, client=self._redis, runs=self._runs)
        self._view = SessionView(
            cache,
            self._redis,
            self.settings.redis_key_prefix,
            index=self._index,
            runs=self._runs,
            decoded_bytes=self._decoded_bytes,
        )

    async def _stop_more(self) -> None:
        if self._recording:
            await asyncio.wait(list(self._recording.values()), timeout=self.wait_timeout)
        await self._own.close(self.wait_timeout)
        await self._watcher.stop()
        view, self._view = self._view, None
        if view is not None:
            await view.cache.close()
        client, self._redis = self._redis, None
        if client is not None:
            await client.aclose()

    def _ready(self) -> tuple[SessionIndex, RunStore, SessionView]:
        if self._index is None or self._runs is None or self._view is None:
            raise NotStartedError("the backend is not started: use `async with` or start()")
        return self._index, self._runs, self._view

    @property
    def cache(self) -> TranscriptCache:
        return self._ready()[2].cache

    @property
    def view(self) -> SessionView:
        """How this backend reads sessions from the transcript cache."""
        return self._ready()[2]

    async def _applied(self, what: str, position: Position, first_poll: float = 0.001) -> None:
        """Wait (polling as the memory writes do) until ``what`` has applied ``position``."""
        index, runs, view = self._ready()
        polls = {"first_poll": first_poll, "max_poll": self.max_poll}
        if what == "sessions":
            await index.wait_for(position, self.wait_timeout, **polls)
        elif what == "runs":
            await runs.wait_for(position, self.wait_timeout, **polls)
        else:
            await view.cache.wait_for(position, self.wait_timeout, **polls)

    # -- sessions ------------------------------------------------------------------------

    async def describe(self, session_id: str) -> SessionInfo | None:
        index, _, _ = self._ready()
        try:
            row = await index.get(session_id)
        except NotFoundError:
            pass
        else:
            self._owners[session_id] = Owner(row.user_id, row.tenant)
            # An undeclared session's owner is its first run's until a
            # session_created declares one: only a declared owner is kept.
            if row.declared:
                self._declared[session_id] = _Declared(
                    Owner(row.user_id, row.tenant),
                    ended=row.status == "ended",
                    fork=row.parent_session_id is not None,
                )
            return info_of(row)
        if await index.is_deleted(session_id):
            return deleted_info(session_id, datetime.now().astimezone())
        return None

    async def reopens(self, session_id: str, caller: Caller) -> bool:
        """True when an open of the session by ``caller`` needs no session-index
        query: this backend described it as ``caller``'s, its owner declared
        (a declared owner never changes), not a fork (whose fork point an
        open reads), and the transcript cache still holds it, not erased (one
        Redis call; False sends the open to :meth:`describe`, which knows
        what happened)."""
        declared = self._declared.get(session_id)
        if (
            declared is None
            or declared.fork
            or declared.owner != Owner(caller.user_id, caller.tenant)
        ):
            return False
        return await self._ready()[2].holds_live(session_id, declared.owner)

    async def write_session_events(self, events: Sequence[Event]) -> None:
        for session_id in {e.session_id for e in events if e.session_id is not None}:
            await self._own.settle(session_id, self.wait_timeout)
        positions = await publish_retrying(
            self.publisher, events, atomic=False, attempts=5, max_delay=2.0
        )
        # One session, one partition: the last position covers the others.
        if any(
            isinstance(e.payload, SessionCleared | SessionDeleted | SessionEnded) for e in events
        ):
            # Reads take the clear point and the deletion, and writes the end too,
            # from the transcript cache; a deletion also removes the session's
            # rows from the run-status store.
            waits = [
                self._applied("sessions", positions[-1]),
                self._applied("transcripts", positions[-1]),
            ]
            if any(isinstance(e.payload, SessionDeleted) for e in events):
                waits.append(self._applied("runs", positions[-1]))
            await asyncio.gather(*waits)
        else:
            await self._applied("sessions", positions[-1])

    # -- runs ------------------------------------------------------------------------------

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

    async def _owner(self, session_id: str) -> Owner | None:
        """The session's owner (None for a session the index does not hold: nothing to
        read of it then but what the cache lists)."""
        if session_id not in self._owners:
            await self.describe(session_id)
        return self._owners.get(session_id)

    async def tail(self, session_id: str) -> RunTail | None:
        self._own.check(session_id)
        view = self._ready()[2]
        return await self._tail_of(
            session_id, await view.tail(session_id, await self._owner(session_id))
        )

    async def write_point(self, session_id: str) -> WritePoint | None:
        """From the transcript cache alone (one script call): the tail, clear point,
        deletion and end, as the cache's projector applied them; None when the
        cache cannot say (see :meth:`SessionView.write_view`)."""
        self._own.check(session_id)
        view = self._ready()[2]
        seen = await view.write_view(session_id, await self._owner(session_id))
        if seen is None:
            return None
        tail = await self._tail_of(session_id, seen.tail)
        # An end the index showed is left to the index's check: a transcript
        # cache built before it recorded ends may not know it.
        declared = self._declared.get(session_id)
        owner = None
        if declared is not None and not declared.ended:
            owner = (declared.owner.user_id, declared.owner.tenant)
        return WritePoint(tail, seen.cleared_ms, seen.deleted, seen.ended, owner)

    async def _tail_of(self, session_id: str, last: RunRecord | None) -> RunTail | None:
        """The tail, given the cache's newest run: this backend's own newer write
        when the cache does not have it yet."""
        pending = self._own.pending(session_id)
        if pending and (last is None or pending[-1].order >= (last.first_ms, last.run_id)):
            # Our own write of the newest run, which the cache may not have yet
            # (a new run it does not list, or an append it has not applied).
            mine = pending[-1]
            return RunTail(mine.run_id, mine.first_ms, list(mine.messages), True)
        if last is None:
            return None
        return RunTail(last.run_id, last.first_ms, last.messages, await self._recorded(last.run_id))

    async def write_run(self, events: Sequence[Event], *, base: RunTail | None = None) -> None:
        """Write one run's events (see the module contract). ``base``: the tail the
        events were planned on, when they append to it (an append made under the
        run's claim then returns at the acknowledgement; :class:`RunBusyError`
        when the run changed since or another writer holds it: plan again)."""
        run_id, session_id = events[0].run_id, events[0].session_id
        assert run_id is not None
        if session_id is not None:
            self._own.check(session_id)
        first = events[0].payload
        if isinstance(first, RunStarted):
            await self._write_new(events, run_id, session_id)
        elif not await self._recorded(run_id):
            # Someone else's run (the orchestrator's): only the cache's verdict says
            # whether the append fits what they wrote meanwhile.
            last = (await publish_retrying(self.publisher, events, attempts=5, max_delay=2.0))[-1]
            await self._applied("transcripts", last)
            await self._check_taken(run_id, last)
        elif (
            base is not None
            and base.run_id == run_id
            and session_id is not None
            and self.visible_to == "writer"
            and await self._served_here(session_id, events[0])
        ):
            await self._append_claimed(events, run_id, session_id, base)
        else:
            await self._append_waiting(events, run_id)

    async def _served_here(self, session_id: str, event: Event) -> bool:
        """Whether this backend may serve the write to the session's reads: not a
        run someone else wrote into the session (the cache keeps those out)."""
        owner = await self._owner(session_id)
        return owner is None or owner == Owner(event.user_id, event.tenant)

    async def _write_new(
        self, events: Sequence[Event], run_id: str, session_id: str | None
    ) -> None:
        first = events[0].payload
        assert isinstance(first, RunStarted)
        last = (await publish_retrying(self.publisher, events, attempts=5, max_delay=2.0))[-1]
        self._sources[run_id] = SOURCE_LABEL in first.labels
        # A new run: other processes learn from the run-status store whose it is.
        if (
            session_id is None
            or self.visible_to == "everyone"
            or not await self._served_here(session_id, events[0])
        ):
            await self._confirm(run_id, last, new=True)
            return
        # Nobody else knows the run, and the ledger checked its events
        # against an empty run: the cache cannot refuse it. Durable now;
        # served from here until the cache has it.
        pending = Pending(
            session_id,
            run_id,
            millis(events[0].occurred_at),
            build_messages_from_events(events, run_id),
            last.offset,
        )
        self._own.add(pending, self._confirm(run_id, last, new=True, later=pending.hurry))

    async def _append_claimed(
        self, events: Sequence[Event], run_id: str, session_id: str, base: RunTail
    ) -> None:
        """Append under the run's claim, checked against its true state; served from
        here until the cache has it."""
        tenant = events[0].tenant  # the run's: its claim lives in its tenant's keys
        claims = self._ready_claims().for_tenant(tenant)
        await self._recorded_wrote(run_id)
        claim = await claims.take(run_id)
        if not claim.taken:
            raise RunBusyError(f"run {run_id}: another writer is appending to it")
        try:
            truth = await self._state_under(claim, run_id, tenant)
            if truth is None or truth != base.messages:
                raise RunBusyError(f"run {run_id}: it changed since it was read")
            builder = TranscriptBuilder(
                run_id, state=TranscriptState(run_id=run_id, ledger=ledger_state(truth))
            )
            for event in events:
                builder.apply(event)
            after = builder.messages()
        except BaseException:
            await claims.give_back(run_id, claim)
            raise
        # A failed publish keeps the claim in flight until it lapses: the
        # append may still land, and nobody must plan on the run without it.
        last = (await publish_retrying(self.publisher, events, attempts=5, max_delay=2.0))[-1]
        # Durable now. Others find the claim busy until its offset is recorded
        # and applied; this backend's next take of the run awaits the record.
        self._record_wrote(run_id, last, claims)
        pending = Pending(session_id, run_id, base.first_ms, after, last.offset)
        self._own.add(pending, self._confirm(run_id, last, new=False, later=pending.hurry))

    async def _state_under(
        self, claim: Claim, run_id: str, tenant: str | None
    ) -> list[Message] | None:
        """The run's messages when ``claim`` was taken: this backend's own write
        when the cache has not applied it yet, else the cache's; None when this
        backend's own earlier append is unapplied but no longer held here."""
        mine = self._own.find(run_id)
        if mine is not None and mine.offset > claim.last:
            return list(mine.messages)
        if claim.mine is not None:
            return None
        cached = claim.messages()
        if cached is not None:
            return cached
        if claim.last >= 0:
            # The body expired: from the log.
            return await self._ready()[2].cache.for_tenant(tenant).get(run_id)
        return []

    async def _append_waiting(self, events: Sequence[Event], run_id: str) -> None:
        """Append to a recorded run without a plan to check (``pop_item``, another
        user's write): under the run's claim, waiting for the cache's verdict."""
        claims = self._ready_claims().for_tenant(events[0].tenant)
        deadline = asyncio.get_running_loop().time() + self.wait_timeout
        delay = 0.002
        await self._recorded_wrote(run_id)
        while not (await claims.take(run_id)).taken:
            if asyncio.get_running_loop().time() > deadline:
                raise WriteRefusedError(
                    f"run {run_id}: another writer held it for {self.wait_timeout:.0f}s"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        # A failed publish keeps the claim in flight until it lapses (as above).
        last = (await publish_retrying(self.publisher, events, attempts=5, max_delay=2.0))[-1]
        await claims.wrote(run_id, last.topic, last.partition, last.offset)
        await self._applied("transcripts", last)
        await self._check_taken(run_id, last)

    def _record_wrote(self, run_id: str, last: Position, claims: RunClaims) -> None:
        """Record the claim's offset in the background (a Redis blip is retried)."""

        async def record() -> None:
            for attempt in range(5):
                try:
                    await claims.wrote(run_id, last.topic, last.partition, last.offset)
                    return
                except Exception as e:
                    if attempt == 4:
                        # The claim stays in flight until it lapses: nobody plans
                        # on the run meanwhile, so nothing is lost, only delayed.
                        log.warning("run %s: the claim's offset was not recorded: %s", run_id, e)
                        return
                    await asyncio.sleep(0.05 * (attempt + 1))

        task = asyncio.ensure_future(record())
        self._recording[run_id] = task
        task.add_done_callback(
            lambda t: (
                self._recording.pop(run_id, None) if self._recording.get(run_id) is t else None
            )
        )

    async def _recorded_wrote(self, run_id: str) -> None:
        """Wait for this backend's last claim record of the run (before taking it again)."""
        task = self._recording.get(run_id)
        if task is not None:
            await asyncio.shield(task)

    def _ready_claims(self) -> RunClaims:
        if self._claims is None:
            raise NotStartedError("the backend is not started: use `async with` or start()")
        return self._claims

    async def settle(self, session_id: str) -> None:
        """Wait until the transcript cache has this backend's new runs of the session
        (raising a failed confirmation), e.g. before handing the session to another
        process that must see them."""
        await self._own.settle(session_id, self.wait_timeout)

    async def _confirm(
        self, run_id: str, last: Position, *, new: bool, later: asyncio.Event | None = None
    ) -> None:
        """Wait (however long: a slow cache is no failure, the write is durable)
        until the cache, and for a new run the run-status store, applied
        ``last``; then check the cache took it. ``later``: a served write's
        confirmation, which nobody awaits until that event is set (a settle):
        it first lets the projections work a while, as each look at them is
        round trips that the writer's next call would queue behind."""
        if later is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(later.wait(), _CONFIRM_LATER)
        # A served write's projections usually have it by now: one look says so,
        # and whether the cache took it; else wait as every reader does, then look.
        took = None if later is None else await self._ready()[2].applied(run_id, last)
        waits = [w for w, due in (("transcripts", took is None), ("runs", new)) if due]
        warned = False
        while waits:
            try:
                await asyncio.gather(*(self._applied(what, last) for what in waits))
                break
            except NotCaughtUpError as e:
                if not warned:
                    log.warning("run %s: still waiting for the projections: %s", run_id, e)
                    warned = True
        if took is None:
            await self._check_taken(run_id, last)
        elif not took:
            raise self._refused(run_id, last)

    async def _check_taken(self, run_id: str, last: Position) -> None:
        if not await self._ready()[2].taken(run_id, last.offset):
            raise self._refused(run_id, last)

    @staticmethod
    def _refused(run_id: str, last: Position) -> WriteRefusedError:
        return WriteRefusedError(
            f"run {run_id}: the transcript cache did not take the event at "
            f"{last.topic}/{last.partition}@{last.offset}: it dead-lettered it (another "
            "writer changed the run first, or the record broke one of its rules); "
            "`runwire dlq list` names the reason"
        )

    async def history(
        self, session_id: str, after_ms: int | None = None, turns: int | None = None
    ) -> list[RunRecord]:
        await self._own.settle(session_id, self.wait_timeout)
        view = self._ready()[2]
        return await view.history(session_id, await self._owner(session_id), after_ms, turns)

    async def visible(self, session_id: str, turns: int | None = None) -> Visible:
        """The session's runs after its clear point, for its owner
        (:meth:`~runwire.projections.transcripts.session_view.SessionView.visible`),
        with this backend's unconfirmed new runs of it merged in (they only add
        turns: the caller cuts to ``turns``)."""
        self._own.check(session_id)
        view = self._ready()[2]
        seen = await view.visible(session_id, await self._owner(session_id), turns)
        pending = self._own.pending(session_id)
        if not pending:
            return seen
        if seen.deleted:
            self._own.forget(session_id)
        return merge(seen, pending)

    async def lineage(self, info: SessionInfo) -> Lineage:
        """The runs the session's history is read from: its fork prefix, then its
        visible runs (:mod:`~runwire.sessions.forks`)."""
        await self.settle(info.session_id)  # the log read finds runs through the cache
        seen = await self.visible(info.session_id)
        if seen.deleted:
            raise NotFoundError(f"no session {info.session_id!r}")
        return lineage(info, seen.run_ids)

    async def history_at(self, info: SessionInfo, turn: int) -> SessionAsOf:
        """The history at the end of turn ``turn`` (counted over the prefix and the
        visible runs), read from the log (:mod:`~runwire.projections.transcripts.history`)."""
        await self.settle(info.session_id)  # the log read finds runs through the cache
        seen = await self.visible(info.session_id)
        if seen.deleted:
            raise NotFoundError(f"no session {info.session_id!r}")
        return await history_at(self.cache.history(), info, seen.run_ids, turn)

    async def turns(self, info: SessionInfo) -> list[Turn]:
        """The turns of the prefix and the visible runs, read from the log
        (:meth:`~runwire.projections.transcripts.history.TranscriptHistory.session_turns`)."""
        line = await self.lineage(info)
        return await self.cache.history().session_turns(
            info.session_id, line.run_ids, line.bounds, skip_erased=True
        )

    async def prefix(self, info: SessionInfo) -> list[Message]:
        """A fork's shared prefix (nothing for other sessions), read from the log once
        per process: a prefix never changes, but erasure can take runs from it, so
        every read checks which of its runs are still there (one cache call)."""
        line = lineage(info, [])
        if not line.run_ids:
            return []
        history = self.cache.history()
        present = await history.present(line.run_ids)
        key = (tuple(line.run_ids), tuple(sorted(line.bounds.items())))
        held = self._prefixes.get(key)
        if held is not None and held[0] == present:
            self._prefixes.move_to_end(key)
            return list(held[1])
        runs = await history_of(history, line)
        messages = [m for _, run in runs for m in run]
        self._prefixes[key] = (present, messages)
        while len(self._prefixes) > _PREFIXES_HELD:
            self._prefixes.popitem(last=False)
        return list(messages)

    def fork_log(self) -> ForkLog:
        """Reads runs' records from the log (where they lie: the transcript cache's meta,
        else the run-status store), for planning forks (:mod:`~runwire.sessions.forks`)."""
        return self.cache.history()

    async def forks_of(self, session_id: str, user_id: str | None) -> list[SessionInfo]:
        """The sessions forked from ``session_id`` (``user_id``'s), newest activity first."""
        index = self._ready()[0]
        out: list[SessionInfo] = []
        page: str | None = None
        while True:
            found = await index.list(
                parent_session_id=session_id, user_id=user_id, page=page, limit=200
            )
            out += [info_of(row) for row in found.items]
            page = found.next_page
            if page is None:
                return out

    async def items(
        self, session_id: str, after_ms: int | None = None, limit: int | None = None
    ) -> list[SessionItem]:
        """The framework items of the visible runs (the last ``limit`` or more)
        (:meth:`~runwire.projections.transcripts.session_view.SessionView.items`)."""
        await self._own.settle(session_id, self.wait_timeout)
        view = self._ready()[2]
        found = await view.items(session_id, await self._owner(session_id), limit)
        if found.deleted:
            raise NotFoundError(f"no session {session_id!r}")
        return [
            SessionItem(run_id, i["event_id"], i["framework"], i.get("item"))
            for run_id, items in found.runs
            for i in items
        ]

    async def find_run(self, run_id: str) -> KnownRun | None:
        mine = self._own.find(run_id)
        if mine is not None:
            return KnownRun(run_id, mine.session_id)
        known, session_id = await self._ready()[2].session_of(run_id)
        return KnownRun(run_id, session_id) if known else None

    async def erase(self, session_id: str, run_ids: Sequence[str]) -> None:
        await self._own.settle(session_id, self.wait_timeout)
        for run_id in run_ids:
            self._sources.pop(run_id, None)
        await self._ready()[2].erase(session_id, run_ids)

    async def keep_for(self, session_id: str, run_ids: Sequence[str], ttl: int) -> None:
        await self._own.settle(session_id, self.wait_timeout)
        await self._ready()[2].keep_for(session_id, run_ids, ttl)

    async def idle_sessions(self, before: datetime, limit: int = 500) -> list[SessionInfo]:
        index, _, _ = self._ready()
        page = await index.list(status="active", until=before, limit=limit)
        return [info_of(row) for row in page.items]

    # -- listeners ---------------------------------------------------------------------------

    def listen(self, session_id: str, listener: Listener) -> None:
        self._watcher.add(session_id, listener)

    def unlisten(self, session_id: str, listener: Listener) -> None:
        self._watcher.remove(session_id, listener)
