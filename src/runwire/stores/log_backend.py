"""The stores' log on the stack: Kafka for writes and for a run's events, the
run-status store and the session index (Postgres) for rows and queries.

- A run is read by its positions: the run-status row says where its events
  lie (partition, first and last offset) and the one run reader reads that
  range (:class:`~runwire.log.runs.RunReader`); nothing scans the topic.
- ``write`` publishes a run's events as one atomic record batch on its
  partition (a session's events in order on theirs), retrying what may
  succeed later, then waits until the run-status store and the session
  index have applied the last position (read-your-writes). So the ``runs``
  and ``sessions`` projectors must be running (``runwire serve
  projector-runs`` / ``projector-sessions``, or
  :func:`runwire.sessions.embedded.projectors_running` in one process);
  without them a write fails with
  :class:`~runwire.projections.runtime.waiting.NotCaughtUpError` after
  ``wait_timeout`` seconds (the events are in the log by then).
- ``async with LogStores(settings) as stores`` gives the three stores on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Self

from runwire.contract.events import Event, Stream
from runwire.errors import NotFoundError, NotStartedError
from runwire.log import Publisher, publish_retrying
from runwire.log.runs import RunReader
from runwire.projections.runs.fold import RunRow
from runwire.projections.runs.reader import RunStore as RunStatusStore
from runwire.projections.runtime.pg import Pool, open_pool
from runwire.projections.sessions.fold import SessionRow
from runwire.projections.sessions.reader import SessionIndex
from runwire.settings import Settings
from runwire.stores.appends import history
from runwire.stores.event_stores import Stores
from runwire.stores.protocol import RunLog

__all__ = ["KafkaStoreLog", "LogStores", "run_events"]


class KafkaStoreLog:
    """A :class:`~runwire.stores.protocol.StoreLog` on Kafka and Postgres (see the module)."""

    def __init__(self, settings: Settings, *, wait_timeout: float = 10.0) -> None:
        self.settings = settings
        self.wait_timeout = wait_timeout
        self._publisher: Publisher | None = None
        self._pool: Pool | None = None
        self._runs: RunStatusStore | None = None
        self._index: SessionIndex | None = None
        self._reader: RunReader | None = None

    async def start(self) -> None:
        if self._publisher is not None:
            return
        try:
            self._publisher = Publisher(self.settings)
            await self._publisher.start()
            self._pool = await open_pool(self.settings, max_size=4, name="runwire-stores")
            self._runs = RunStatusStore(self._pool, self.settings)
            self._index = SessionIndex(self._pool, self.settings)
            await self._runs.prepare()
            await self._index.prepare()
            self._reader = RunReader(self.settings)
            await self._reader.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.stop()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            await publisher.stop()
        self._runs = self._index = None

    def _ready(self) -> tuple[Publisher, RunStatusStore, SessionIndex, RunReader]:
        if (
            self._publisher is None
            or self._runs is None
            or self._index is None
            or self._reader is None
        ):
            raise NotStartedError("the stores are not started: use `async with` or start()")
        return self._publisher, self._runs, self._index, self._reader

    async def run(self, run_id: str, *, with_events: bool = True) -> RunLog | None:
        _, runs, _, reader = self._ready()
        try:
            row = await runs.get(run_id)
        except NotFoundError:
            return None
        where = {
            "partition": row.log_partition,
            "first_offset": row.first_offset,
            "last_offset": row.last_offset,
        }
        if not with_events:
            return RunLog(row, [], where)
        records = await reader.read(run_id, row.log_partition, row.first_offset, row.last_offset)
        return RunLog(row, [r.event for r in records], where)

    async def runs(
        self,
        *,
        session_id: str | None,
        status: str | None,
        labels: Mapping[str, str] | None,
        limit: int,
        oldest_first: bool,
    ) -> list[RunRow]:
        _, runs, _, _ = self._ready()
        page = await runs.list(
            session_id=session_id,
            status=status,
            labels=labels,
            limit=limit,
            oldest_first=oldest_first,
        )
        return list(page.items)

    async def session(self, session_id: str) -> SessionRow | None:
        _, _, index, _ = self._ready()
        try:
            return await index.get(session_id)
        except NotFoundError:
            return None

    async def sessions(
        self,
        *,
        user_id: str | None,
        status: str | None,
        labels: Mapping[str, str] | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
    ) -> list[SessionRow]:
        _, _, index, _ = self._ready()
        page = await index.list(
            user_id=user_id, status=status, labels=labels, since=since, until=until, limit=limit
        )
        return list(page.items)

    async def write(self, events: Sequence[Event]) -> None:
        if not events:
            return
        publisher, runs, index, _ = self._ready()
        run_events = events[0].stream is Stream.RUN
        positions = await publish_retrying(
            publisher, events, atomic=run_events, attempts=5, max_delay=2.0
        )
        last = positions[-1]  # one run (or one session): one partition, in order
        waits = [index.wait_for(last, self.wait_timeout, first_poll=0.001, max_poll=0.01)]
        if run_events:
            waits.append(runs.wait_for(last, self.wait_timeout, first_poll=0.001, max_poll=0.01))
        await asyncio.gather(*waits)


async def run_events(settings: Settings, run_id: str) -> list[Event]:
    """A run's events read by its positions, as consumers keep them
    (:func:`runwire.stores.appends.history`); :class:`NotFoundError` for a run
    the run-status store does not hold."""
    async with await RunStatusStore.connect(settings) as runs:
        row = await runs.get(run_id)
    async with RunReader(settings) as reader:
        records = await reader.read(run_id, row.log_partition, row.first_offset, row.last_offset)
    return history(run_id, [r.event for r in records])


class LogStores:
    """The three stores on the stack; ``async with LogStores(settings) as stores``."""

    def __init__(self, settings: Settings, *, wait_timeout: float = 10.0) -> None:
        self.log = KafkaStoreLog(settings, wait_timeout=wait_timeout)
        stores = Stores.on(self.log)
        self.memory, self.runs, self.sessions = stores.memory, stores.runs, stores.sessions

    async def __aenter__(self) -> Self:
        await self.log.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.log.stop()
