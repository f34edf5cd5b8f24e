"""A writer's own runs, served to it before the transcript cache has them.

Why: a run write is durable once the broker acknowledges it (acks=all); the
transcript cache applies it a few milliseconds later. Waiting for the cache
before returning doubled the cost of adding a message. A write the cache
cannot refuse - a *new* run (nobody else knows its id, and its events were
checked with the ledger against an empty run), or an append made under the
run's claim (:mod:`~runwire.projections.transcripts.claims`: checked against
the run's true state, nobody else appending until the cache has it) - lets
its writer return at the acknowledgement and serve the run itself until the
cache has it.

Contract (:class:`OwnWrites`, one per backend):
- ``add(pending)`` keeps a run of a session with the messages it holds after
  the write, and starts confirming it in the background: waiting until the
  transcript cache (and the run-status store) have applied its last
  position, then checking the cache took it. A later write of the same run
  replaces it.
- ``pending(session_id)``: the session's runs not yet confirmed. Reads merge
  them (:func:`merge`): a pending run stands for the cache's copy of it,
  which is never newer while the writer's claim holds.
- A confirmation that finds the write refused (the cache did not take it)
  is logged and raised by the next ``check(session_id)``: the writer learns
  of it at its next operation on the session, never silently. A slow cache
  is not a failure: the write is durable, the confirmation keeps waiting,
  and the writer keeps serving the run meanwhile.
- A confirmation may take its time (the writer serves the run meanwhile);
  ``settle`` and ``close`` tell it someone waits (``Pending.hurry``).
- ``settle(session_id, timeout)`` waits for the session's confirmations
  (:class:`~runwire.projections.runtime.waiting.NotCaughtUpError` after
  ``timeout``; the writes stay served and confirming): reads that do not
  merge (framework items, history records) and writes that must follow the
  cache (clears, deletions, TTLs) settle first.
- ``close(timeout)`` waits for every confirmation up to ``timeout``, then
  stops waiting (logged: the writes are in the log, the cache takes them
  when it runs).
- Other processes see the run when the cache has applied it (they read the
  projection); only the writer's own backend serves it earlier.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field

from runwire.projections.runtime.waiting import NotCaughtUpError
from runwire.projections.transcripts.session_view import RunRecord, Visible
from runwire.transcript.messages import Message

__all__ = ["OwnWrites", "Pending", "merge", "merge_records"]

log = logging.getLogger(__name__)


@dataclass(eq=False, slots=True)
class Pending:
    """A new run this backend wrote that the cache may not have yet."""

    session_id: str
    run_id: str
    first_ms: int
    messages: list[Message]
    """The run's messages after this write (what the cache will hold)."""
    offset: int = -1
    """The log offset of the write's last event."""
    confirmed: asyncio.Task[None] | None = field(default=None, repr=False)
    hurry: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    """Set when someone waits for the confirmation (it need not wait then)."""

    @property
    def order(self) -> tuple[int, str]:
        """The session index's order: first ms, then run id."""
        return self.first_ms, self.run_id


class OwnWrites:
    """The unconfirmed new runs of one backend, by session (see the module contract)."""

    def __init__(self) -> None:
        self._by_session: dict[str, dict[str, Pending]] = {}
        self._confirming: dict[str, set[Pending]] = {}
        """Every write of a session whose confirmation runs, also one a later
        write of its run replaced in ``_by_session`` (a new run's confirmation
        waits for the run-status store too, which the append's does not)."""
        self._failed: dict[str, BaseException] = {}

    def add(self, pending: Pending, confirm: Awaitable[None]) -> None:
        """Keep ``pending`` until ``confirm`` (the cache took it) completes."""
        runs = self._by_session.setdefault(pending.session_id, {})
        runs[pending.run_id] = pending
        self._confirming.setdefault(pending.session_id, set()).add(pending)
        pending.confirmed = asyncio.ensure_future(self._confirm(pending, confirm))

    async def _confirm(self, pending: Pending, confirm: Awaitable[None]) -> None:
        try:
            await confirm
        except asyncio.CancelledError:
            raise
        except Exception as e:  # kept for the writer's next operation on the session
            log.error(
                "session %s: run %s was acknowledged but the transcript cache did not take it: %s",
                pending.session_id,
                pending.run_id,
                e,
            )
            self._failed.setdefault(pending.session_id, e)
        finally:
            runs = self._by_session.get(pending.session_id)
            if runs is not None and runs.get(pending.run_id) is pending:
                del runs[pending.run_id]
                if not runs:
                    del self._by_session[pending.session_id]
            confirming = self._confirming.get(pending.session_id)
            if confirming is not None:
                confirming.discard(pending)
                if not confirming:
                    del self._confirming[pending.session_id]

    def pending(self, session_id: str) -> list[Pending]:
        """The session's unconfirmed runs, in the session's order."""
        runs = self._by_session.get(session_id)
        return sorted(runs.values(), key=lambda p: p.order) if runs else []

    def find(self, run_id: str) -> Pending | None:
        for runs in self._by_session.values():
            found = runs.get(run_id)
            if found is not None:
                return found
        return None

    def check(self, session_id: str) -> None:
        """Raise (once) the failure of a confirmation of this session's runs."""
        failed = self._failed.pop(session_id, None)
        if failed is not None:
            raise failed

    async def settle(self, session_id: str, timeout: float) -> None:  # noqa: ASYNC109 - a deadline
        """Wait until the session's runs are confirmed (a refused one: raised)."""
        pending = list(self._confirming.get(session_id, ()))
        for p in pending:
            p.hurry.set()
        tasks = [p.confirmed for p in pending if p.confirmed is not None]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout)
            if late:
                raise NotCaughtUpError(
                    f"session {session_id}: the transcript cache has not applied "
                    f"{len(late)} of this writer's runs within {timeout:.1f}s (they are in "
                    "the log; the cache takes them when its projector runs)"
                )
        self.check(session_id)

    def forget(self, session_id: str) -> None:
        """Drop what is kept of the session (it was erased or deleted)."""
        self._by_session.pop(session_id, None)

    async def close(self, timeout: float) -> None:  # noqa: ASYNC109 - a deadline
        held = [p for confirming in self._confirming.values() for p in confirming]
        for p in held:
            p.hurry.set()
        tasks = [p.confirmed for p in held if p.confirmed is not None]
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=timeout)
        if late:
            log.warning(
                "%d runs written here are not confirmed by the transcript cache yet; "
                "they are in the log and the cache takes them when its projector runs",
                len(late),
            )
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)


def merge_records(
    records: Sequence[RunRecord], pending: Sequence[Pending], cleared_ms: int | None
) -> list[RunRecord]:
    """``records`` (a session's runs in order) with the pending runs standing for
    the cache's copies of them, or put in their places when the cache does not
    list them; runs at or before ``cleared_ms`` are left out."""
    mine = {
        p.run_id: RunRecord(p.run_id, p.first_ms, list(p.messages))
        for p in pending
        if cleared_ms is None or p.first_ms > cleared_ms
    }
    if not mine:
        return list(records)
    out = [mine.pop(r.run_id, r) for r in records]
    if not mine:
        return out
    return sorted([*out, *mine.values()], key=lambda r: (r.first_ms, r.run_id))


def merge(seen: Visible, pending: Sequence[Pending]) -> Visible:
    """A whole-session read with the pending runs merged (see :func:`merge_records`)."""
    if seen.deleted or not pending:
        return seen
    merged = merge_records(seen.records(), pending, seen.cleared_ms)
    return Visible.of(merged, seen.cleared_ms)
