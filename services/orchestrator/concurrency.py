"""One run at a time on a session, by agent: the orchestrator's side of the session fence.

Contract:
- An agent's ``concurrent_runs`` (:class:`~runwire.services.orchestrator.agents.AgentProfile`)
  says what a second run on a busy session gets: ``"allow"`` (the default:
  runs do not wait for each other), ``"refuse"`` (it fails at once with
  kind ``session_busy`` and a message naming the holder) or ``"queue"`` (it
  waits until the holder lets go, up to ``queue_timeout``, then fails the
  same way).
- The fence is the Session API's (:mod:`runwire.sessions.versions`): a run
  holds its session through a ``session_writer_claimed`` with the run id as
  holder, no expected version and no lease, written before its first model
  call; the session index decides in the session's partition order, so two
  runs racing from two orchestrator instances get one winner. The claim is
  released (``committed``: the session's version moves on) once the run
  has ended and its last event is in the transcript cache, so a Session
  API writer that reads the new version reads the run's answer too; until
  the release is written the orchestrator commits no offset past the run's
  start, so an instance that takes over after a crash releases it. Session
  API writers that name versions are refused while a run holds the session,
  and a run is refused (or queued) while one of them does.
- Deciding is idempotent per run: a run already admitted is admitted again
  without a write; after a restart its claim is re-made with the same
  holder, which the fold takes as a renewal.
- A claim whose holder is a run that has ended (its orchestrator stopped
  between the end and the release) is released on its behalf by the next
  run that finds it. Releasing twice is harmless: a release by anyone but
  the open claim's holder changes nothing (each release has its own id).
- :class:`NoGate` (the default) admits everything and writes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, Protocol

from runwire.contract.events import Event, SessionWriterClaimed, SessionWriterReleased
from runwire.errors import NotFoundError
from runwire.log import EventWriter, Position, publish_retrying
from runwire.projections.runs.fold import TERMINAL
from runwire.projections.sessions.fold import SessionRow, claim_open
from runwire.services.run_context import RunContext

if TYPE_CHECKING:
    from datetime import datetime

    from runwire.projections.runs.reader import RunStore
    from runwire.projections.sessions.reader import SessionIndex
    from runwire.projections.transcripts.reader import TranscriptCache

__all__ = ["ConcurrentRuns", "NoGate", "SessionFence", "SessionGate"]

log = logging.getLogger(__name__)

ConcurrentRuns = Literal["refuse", "queue", "allow"]

PRODUCER = "runwire-orchestrator"


class SessionGate(Protocol):
    async def admit(self, run: RunContext, policy: ConcurrentRuns) -> str | None:
        """None: the run may go on; else why it may not (the run fails with it)."""
        ...

    def ended(
        self, run: RunContext, policy: ConcurrentRuns, last: Position, first_offset: int
    ) -> None:
        """The run (from ``first_offset``) has ended at ``last``: let its session go
        (in the background)."""
        ...

    def holding_back(self, partition: int) -> int | None:
        """The first offset of the oldest run of ``partition`` whose release is not
        written yet: committed offsets stay at or before it (None: no such run)."""
        ...

    async def close(self) -> None: ...


class NoGate:
    """Every run goes at once; nothing is written."""

    async def admit(self, run: RunContext, policy: ConcurrentRuns) -> str | None:
        return None

    def ended(
        self, run: RunContext, policy: ConcurrentRuns, last: Position, first_offset: int
    ) -> None:
        return None

    def holding_back(self, partition: int) -> int | None:
        return None

    async def close(self) -> None:
        return None


def _release_event(run_id: str, session_id: str, run: RunContext | None = None) -> Event:
    return Event.create(
        SessionWriterReleased(holder=run_id, committed=True),
        session_id=session_id,
        user_id=run.user_id if run else None,
        tenant=run.tenant if run else None,
        producer=PRODUCER,
    )


class SessionFence:
    """A :class:`SessionGate` on the session-events topic and the session index."""

    def __init__(
        self,
        publisher: EventWriter,
        sessions: SessionIndex,
        runs: RunStore,
        transcripts: TranscriptCache | None = None,
        *,
        run_topic: str = "",
        queue_timeout: float = 120.0,
        poll: float = 0.1,
        wait_timeout: float = 30.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._publisher = publisher
        self._sessions = sessions
        self._runs = runs
        self._transcripts = transcripts
        self._run_topic = run_topic
        """The run-events topic (where an ended holder's last event is waited for)."""
        self.queue_timeout = queue_timeout
        self._poll = poll
        self._wait_timeout = wait_timeout
        self._clock = clock
        self._admitted: set[str] = set()
        self._pending: dict[int, dict[str, int]] = {}
        """Per partition, runs ended whose release is not written: their first offsets."""
        self._tasks: set[asyncio.Task[None]] = set()

    def _now(self) -> datetime:
        if self._clock is not None:
            return self._clock()
        from datetime import UTC, datetime

        return datetime.now(UTC)

    async def _row(self, session_id: str) -> SessionRow | None:
        try:
            return await self._sessions.get(session_id)
        except NotFoundError:
            return None

    async def _claim(self, run: RunContext, session_id: str) -> SessionRow | None:
        """Write the run's claim, wait until the index has it; the row then."""
        claim = Event.create(
            SessionWriterClaimed(holder=run.run_id),
            session_id=session_id,
            user_id=run.user_id,
            tenant=run.tenant,
            producer=PRODUCER,
        )
        (position,) = await publish_retrying(self._publisher, [claim], atomic=False)
        await self._sessions.wait_for(position, self._wait_timeout)
        return await self._row(session_id)

    async def _free_if_ended(self, row: SessionRow) -> bool:
        """Release a claim held by a run that has ended; True when it did."""
        holder = row.writer
        if holder is None:
            return False
        try:
            found = await self._runs.get(holder)
        except NotFoundError:
            return False  # not a run (a Session API writer: its lease bounds it)
        if found.status not in {s.value for s in TERMINAL}:
            return False
        log.info("session %s: run %s ended holding it; releasing", row.session_id, holder)
        if self._transcripts is not None:
            # As the run's own release would: only once its answer can be read.
            last = Position(self._run_topic, found.log_partition, found.last_offset)
            await self._transcripts.wait_for(last, self._wait_timeout)
        (position,) = await publish_retrying(
            self._publisher, [_release_event(holder, row.session_id)], atomic=False
        )
        await self._sessions.wait_for(position, self._wait_timeout)
        return True

    async def admit(self, run: RunContext, policy: ConcurrentRuns) -> str | None:
        session_id = run.session_id
        if policy == "allow" or session_id is None or run.run_id in self._admitted:
            return None
        deadline = time.monotonic() + self.queue_timeout
        while True:
            row = await self._claim(run, session_id)
            if row is None:
                return None  # no session the index holds (deleted): nothing to keep apart
            if row.writer == run.run_id:
                self._admitted.add(run.run_id)
                return None
            # Refused by a holder that has let go since, or that has ended and whose
            # release is late: claim again (a race, not a busy session).
            free = not claim_open(row, self._now()) or await self._free_if_ended(row)
            if free and time.monotonic() < deadline:
                continue
            if policy == "refuse" or time.monotonic() >= deadline:
                waited = "" if policy == "refuse" else f" after queueing {self.queue_timeout:.0f}s"
                return (
                    f"session {session_id} is busy{waited}: {row.writer} holds it "
                    f"(this agent's concurrent_runs is {policy!r})"
                )
            # Queued: wait until the holder lets go (or its lease lapses), then claim again.
            while row is not None and claim_open(row, self._now()):
                if time.monotonic() >= deadline or await self._free_if_ended(row):
                    break
                await asyncio.sleep(self._poll)
                row = await self._row(session_id)

    def ended(
        self, run: RunContext, policy: ConcurrentRuns, last: Position, first_offset: int
    ) -> None:
        self._admitted.discard(run.run_id)
        if policy == "allow" or run.session_id is None:
            return
        # Until the release is written, offsets are not committed past the run's
        # start: an instance that takes over reads the run again and releases it.
        self._pending.setdefault(last.partition, {})[run.run_id] = first_offset
        task = asyncio.create_task(self._release(run, last), name=f"release {run.run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def holding_back(self, partition: int) -> int | None:
        pending = self._pending.get(partition)
        return min(pending.values()) if pending else None

    async def _release(self, run: RunContext, last: Position) -> None:
        assert run.session_id is not None
        try:
            if self._transcripts is not None:
                # The next writer that reads the new version reads this run's answer.
                await self._transcripts.wait_for(last, self._wait_timeout)
            event = _release_event(run.run_id, run.session_id, run)
            await publish_retrying(self._publisher, [event], atomic=False)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The next run on the session releases it (the run has ended).
            log.exception("run %s: releasing session %s failed", run.run_id, run.session_id)
        pending = self._pending.get(last.partition, {})
        pending.pop(run.run_id, None)

    async def close(self) -> None:
        tasks = list(self._tasks)
        if tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*tasks, return_exceptions=True), self._wait_timeout
                )
