"""The memory backend on the log: writes to the compacted memory topic, reads
from the Postgres memory projection (:mod:`runwire.projections.memory`).

Read-your-writes: ``write_memory`` publishes, then waits until the memory
projection has applied the record's position before it returns. So the
memory projector must be running (``runwire serve projector-memory``);
without it a write fails with
:class:`~runwire.projections.runtime.waiting.NotCaughtUpError` after
``wait_timeout`` seconds (the write itself is durable in the log by then).
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

from runwire.contract.events import Event, MemoryDeleted, MemoryScope
from runwire.errors import NotStartedError
from runwire.log import Position, Publisher, publish_retrying
from runwire.memory.protocol import MemoryEntry
from runwire.projections.memory.projection import MemoryProjection
from runwire.projections.memory.reader import MemoryEntries
from runwire.projections.runtime.pg import Pool, open_pool
from runwire.projections.runtime.protocol import Projection, ProjectionError
from runwire.projections.runtime.waiting import wait_for
from runwire.settings import Settings

__all__ = ["LogMemoryBackend"]


class LogMemoryBackend:
    """A :class:`~runwire.memory.protocol.MemoryBackend` on Kafka + Postgres.

    ``publisher`` and ``pool`` may be shared (they are then not closed here).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        publisher: Publisher | None = None,
        pool: Pool | None = None,
        wait_timeout: float = 10.0,
        max_poll: float = 0.005,
    ) -> None:
        self.settings = settings
        self.wait_timeout = wait_timeout
        self.max_poll = max_poll
        self._publisher = publisher
        self._own_publisher = publisher is None
        self._pool = pool
        self._own_pool = pool is None
        self._memory: MemoryEntries | None = None
        self._memory_projection: Projection | None = None
        self._started = False

    @property
    def publisher(self) -> Publisher:
        if self._publisher is None:
            raise NotStartedError("the backend is not started: use `async with` or start()")
        return self._publisher

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            raise NotStartedError("the backend is not started: use `async with` or start()")
        return self._pool

    async def start(self) -> None:
        """Connect (Kafka, Postgres) and make sure the read models' tables exist."""
        if self._started:
            return
        try:
            if self._publisher is None:
                self._publisher = Publisher(self.settings)
            if self._own_publisher:
                await self._publisher.start()
            if self._pool is None:
                self._pool = await open_pool(self.settings, max_size=8, name="runwire-sessions")
            self._memory = MemoryEntries(self._pool, self.settings)
            await self._memory.prepare()
            self._memory_projection = MemoryProjection(self._pool, self.settings)
            await self._start_more()
        except BaseException:
            await self._close()
            raise
        self._started = True

    async def _start_more(self) -> None:
        """Hook for subclasses: more resources on the same publisher and pool."""

    async def _stop_more(self) -> None:
        """Hook for subclasses: close what ``_start_more`` opened."""

    async def stop(self) -> None:
        """Close what this backend opened; idempotent."""
        if not self._started:
            return
        self._started = False
        await self._close()

    async def _close(self) -> None:
        try:
            await self._stop_more()
        finally:
            publisher, self._publisher = self._publisher, None
            pool, self._pool = self._pool, None
            if publisher is not None and self._own_publisher:
                await publisher.stop()
            if pool is not None and self._own_pool:
                await pool.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def wait(self, projection: Projection, position: Position) -> None:
        """Return once ``projection`` has applied ``position`` (read-your-writes).

        Polls the stored positions every few milliseconds at most, so a write
        returns soon after its projector applied it.
        """
        await wait_for(
            projection, position, self.wait_timeout, first_poll=0.001, max_poll=self.max_poll
        )

    @property
    def memory(self) -> MemoryEntries:
        if self._memory is None:
            raise NotStartedError("the backend is not started: use `async with` or start()")
        return self._memory

    # -- MemoryBackend -------------------------------------------------------------------

    async def write_memory(self, event: Event) -> None:
        (position,) = await publish_retrying(
            self.publisher, [event], atomic=False, attempts=5, max_delay=2.0
        )
        if self._memory_projection is None:
            raise NotStartedError("the backend is not started: use `async with` or start()")
        await self.wait(self._memory_projection, position)
        p = event.payload
        if not isinstance(p, MemoryDeleted):
            return
        left = await self.memory.get(p.scope, p.owner, p.key)
        if left is not None and left.updated_at < event.occurred_at:
            # Only a projector without the tombstone decoder leaves it: say so, do not lie.
            raise ProjectionError(
                f"the memory projector passed the tombstone of {p.scope}/{p.owner}/{p.key} "
                f"({position.topic}/{position.partition}@{position.offset}) without deleting: "
                "run it with runwire.projections.memory.fold.TombstoneDecoder "
                "(python -m runwire.projections.memory.service)"
            )

    async def memory_entry(self, scope: MemoryScope, owner: str, key: str) -> MemoryEntry | None:
        return await self.memory.get(scope, owner, key)

    async def memory_entries(
        self, scope: MemoryScope, owner: str, prefix: str | None = None, limit: int = 1000
    ) -> list[MemoryEntry]:
        return await self.memory.list(scope, owner, prefix, limit)
