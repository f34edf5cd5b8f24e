"""The read API of the transcript cache.

``TranscriptCache`` serves transcripts from Redis and falls back to the log
on a miss (:mod:`~runwire.projections.transcripts.miss`). It connects lazily
to what a miss needs (Kafka, and Postgres for the run-status store), so a
process that only reads warm transcripts never opens them.

Contract:
- ``get(run_id)`` returns the run's canonical messages, exactly what
  ``build_messages_from_events`` gives for the run's events the projector
  (or the miss path) has applied; :class:`~runwire.errors.NotFoundError`
  when neither the cache nor the run-status store knows the run.
- ``get_session(session_id, last_n_turns)`` returns the messages of the
  session's runs in order (by the time of each run's first event), cut to
  the last turns at turn starts only (:mod:`.turns`): a tool_use and its
  results are never separated. An unknown session gives ``[]``.
- ``wait_for(position, timeout)`` returns once the projector has applied the
  record at ``position`` (as returned by ``Publisher.publish``); a ``get``
  after it sees that record. Raises ``NotCaughtUpError`` on timeout.
- ``get_at(run_id, offset=N | turn=N)`` / ``get_session_at(session_id, turn=N)``:
  time travel, read from the log (:mod:`.history`); the session's turns are
  counted over its runs after its clear point. ``session_turns(session_id)``:
  its turn list (ids, runs, messages, usage), from the log too.
- Every read resolves the live generation first, so a rebuild's switch is
  seen by the next read.
- A reader reads one tenant's namespace of the cache (:mod:`.keys`), its
  ``tenant``: by default the process's (``settings.tenant``; None, the
  events without a tenant, in a process without one), else ``tenant=`` or
  :meth:`TranscriptCache.for_tenant`. It builds no key of another tenant, so
  another tenant's run or session is unknown to it, even with the same id.
"""

from __future__ import annotations

from enum import Enum
from types import TracebackType
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

import redis.asyncio as aioredis

from runwire.errors import NotFoundError
from runwire.log.records import LogPosition
from runwire.log.runs import RunReader
from runwire.projections.runtime import tenancy
from runwire.projections.runtime.waiting import wait_for
from runwire.projections.sessions.owner import Owner
from runwire.projections.transcripts.body import decode_messages
from runwire.projections.transcripts.history import (
    HistoryLog,
    RunAsOf,
    SessionAsOf,
    TranscriptHistory,
    Turn,
)
from runwire.projections.transcripts.keys import owner_tag
from runwire.projections.transcripts.miss import (
    LazyRunStoreLocator,
    MissPath,
    RunLocator,
    RunLog,
    RunStoreLocator,
)
from runwire.projections.transcripts.projection import TranscriptProjection
from runwire.projections.transcripts.redis_store import RedisTranscriptStore
from runwire.projections.transcripts.store import Slot, TranscriptStore
from runwire.settings import Settings
from runwire.transcript.turns import last_turns

if TYPE_CHECKING:
    from runwire.projections.runs.reader import RunStore
    from runwire.transcript.messages import Message


def _checked(tenant: object) -> str | None:
    return None if tenant is None else tenancy.tenant_id(tenant, "a tenant id or None")


@runtime_checkable
class HistoryReadable(HistoryLog, Protocol):
    """A run log that time travel can read (a twin of the run reader)."""


class _Process(Enum):
    TENANT = "the process's tenant"


PROCESS_TENANT: Final = _Process.TENANT
"""``tenant=`` default: the process's tenant (``settings.tenant``)."""


class TranscriptCache:
    """Read API over the transcript cache; ``async with TranscriptCache(settings)``.

    Every dependency may be passed in (tests pass twins); the ones left out
    are built from ``settings`` and closed by :meth:`close`. ``tenant``: whose
    runs and sessions it reads (see the module contract).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        client: aioredis.Redis | None = None,
        store: TranscriptStore | None = None,
        run_log: RunLog | None = None,
        locator: RunLocator | None = None,
        runs: RunStore | None = None,
        tenant: str | _Process | None = PROCESS_TENANT,
    ) -> None:
        self._settings = settings
        self.tenant: str | None = _checked(settings.tenant if tenant is PROCESS_TENANT else tenant)
        """The tenant whose namespace this reader reads (None: no tenant's)."""
        self._own_client = client is None and store is None
        self._client = client
        if store is None:
            if client is None:
                client = aioredis.Redis.from_url(settings.redis_url)
                self._client = client
            store = RedisTranscriptStore(
                client, settings.redis_key_prefix, ttl_seconds=settings.transcript_ttl_seconds
            )
        self._store = store
        self._own_log = run_log is None
        self._log: RunLog = run_log if run_log is not None else RunReader(settings)
        if locator is None and runs is not None:
            locator = RunStoreLocator(runs)
        self._own_locator = locator is None
        self._locator: RunLocator = (
            locator if locator is not None else LazyRunStoreLocator(settings, self.tenant)
        )
        self._scoped: list[TranscriptCache] = []
        """Readers :meth:`for_tenant` made with locators of their own (closed with this one)."""
        self._miss = MissPath(self._store, self._log, self._locator)
        self._projection = TranscriptProjection(self._store, settings)

    def for_tenant(self, tenant: str | None) -> TranscriptCache:
        """This reader reading ``tenant``'s namespace, on the same clients (closing
        it closes nothing: this one owns them)."""
        locator = self._locator
        if isinstance(locator, RunStoreLocator | LazyRunStoreLocator):
            locator = locator.for_tenant(tenant)
        scoped = TranscriptCache(
            self._settings,
            store=self._store,
            run_log=self._log,
            locator=locator,
            tenant=tenant,
        )
        if isinstance(locator, LazyRunStoreLocator):
            self._scoped.append(scoped)
        return scoped

    @property
    def store(self) -> TranscriptStore:
        return self._store

    @property
    def locator(self) -> RunLocator:
        """Where runs are found when the cache does not list them (the run-status store)."""
        return self._locator

    @property
    def misses(self) -> int:
        """How many transcripts this reader rebuilt from the log."""
        return self._miss.fills

    async def close(self) -> None:
        """Close what this reader opened; safe to call twice."""
        if self._own_log and isinstance(self._log, RunReader):
            await self._log.stop()
        if self._own_locator and isinstance(self._locator, LazyRunStoreLocator):
            await self._locator.close()
        scoped, self._scoped = self._scoped, []
        for reader in scoped:
            if isinstance(reader.locator, LazyRunStoreLocator):
                await reader.locator.close()
        client, self._client = self._client, None
        if self._own_client and client is not None:
            await client.aclose()

    async def __aenter__(self) -> TranscriptCache:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _live(self) -> int:
        generation = await self._store.generation(Slot.LIVE)
        assert generation is not None
        return generation

    async def get(self, run_id: str) -> list[Message]:
        """The run's canonical messages (see the module contract)."""
        found = await self._store.messages(await self._live(), [run_id], tenant=self.tenant)
        if run_id in found:
            return decode_messages(found[run_id])
        messages = await self._miss.fill(run_id, self.tenant)
        if messages is None:
            raise NotFoundError(
                f"run {run_id!r} is neither in the transcript cache nor in the run-status store"
            )
        return messages

    async def session_runs(self, session_id: str, owner: Owner | None = None) -> list[str]:
        """The session's run ids, oldest first (none for a deleted session); with
        ``owner`` only that owner's: a run someone else wrote into the session is not
        in its history."""
        tag = "" if owner is None else owner_tag(owner.user_id, owner.tenant)
        live = await self._live()
        runs = await self._store.session_runs(live, session_id, tenant=self.tenant)
        if not runs and not await self._store.deleted(live, [session_id], tenant=self.tenant):
            # The run-status store may still list a deleted session's runs
            # until its projector has applied the deletion too.
            return await self._locator.session_runs(session_id, tag)
        if not tag or not runs:
            return runs
        heads = await self._store.heads(live, runs, tenant=self.tenant)
        unknown = any(heads[r].meta is None for r in runs)
        # A run the cache does not know (flushed): the run-status store says whose.
        theirs = set(await self._locator.session_runs(session_id, tag)) if unknown else set()
        return [
            r
            for r in runs
            if ((meta := heads[r].meta) is not None and meta.owner == tag)
            or (meta is None and r in theirs)
        ]

    async def start_of(self, run_id: str) -> tuple[int, int] | None:
        """Where the run begins in the log, (partition, first offset), if the cache or the
        run-status store knows it (``runwire transcript RUN --follow`` reads from there)."""
        meta = (await self._store.heads(await self._live(), [run_id], tenant=self.tenant))[
            run_id
        ].meta
        if meta is not None:
            return meta.partition, meta.first
        location = await self._locator.locate(run_id)
        if location is not None:
            return location.partition, location.first_offset
        return None

    async def get_session(self, session_id: str, last_n_turns: int | None = None) -> list[Message]:
        """The messages of the session's runs in order, cut to the last turns."""
        runs = await self.session_runs(session_id)
        found = await self._store.messages(await self._live(), runs, tenant=self.tenant)
        messages: list[Message] = []
        for run_id in runs:
            data = found.get(run_id)
            messages += decode_messages(data) if data is not None else await self.get(run_id)
        return last_turns(messages, last_n_turns)

    def history(self) -> TranscriptHistory:
        """Time travel over this cache's log reader and locator (:mod:`.history`)."""
        log = self._log
        if not isinstance(log, HistoryReadable):
            raise TypeError(f"time travel needs a run reader, not {type(log).__name__}")
        return TranscriptHistory(self._store, log, self._locator, tenant=self.tenant)

    async def get_at(
        self, run_id: str, *, offset: int | None = None, turn: int | None = None
    ) -> RunAsOf:
        """The run's transcript as of log ``offset`` or the end of its ``turn``, from the log."""
        return await self.history().run_at(run_id, offset=offset, turn=turn)

    async def visible_runs(self, session_id: str, owner: Owner | None = None) -> list[str]:
        """The session's runs after its clear point, oldest first (only ``owner``'s,
        as :meth:`session_runs`); :class:`NotFoundError` for a deleted session."""
        live = await self._live()
        state = await self._store.session_state(live, session_id, tenant=self.tenant)
        if state.deleted:
            raise NotFoundError(f"session {session_id!r} was deleted")
        runs = await self.session_runs(session_id, owner)
        if state.cleared_ms is None:
            return runs
        heads = await self._store.heads(live, runs, tenant=self.tenant)
        return [
            r for r in runs if (meta := heads[r].meta) is None or meta.first_ms > state.cleared_ms
        ]

    async def get_session_at(self, session_id: str, *, turn: int) -> SessionAsOf:
        """The session's history at the end of its ``turn`` (counted after its clear
        point), from the log."""
        runs = await self.visible_runs(session_id)
        return await self.history().session_at(session_id, runs, turn)

    async def session_turns(self, session_id: str) -> list[Turn]:
        """The turns of the session's runs after its clear point, from the log."""
        runs = await self.visible_runs(session_id)
        return await self.history().session_turns(session_id, runs)

    async def wait_for(
        self,
        position: LogPosition,
        timeout: float = 10.0,  # noqa: ASYNC109 - a deadline for polling, not for one await
        *,
        first_poll: float = 0.002,
        max_poll: float = 0.05,
    ) -> None:
        """Return once the projector has applied ``position`` (read-your-writes)."""
        await wait_for(
            self._projection, position, timeout, first_poll=first_poll, max_poll=max_poll
        )
