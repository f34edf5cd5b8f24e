"""The watchdog: a run nobody will move on is failed visibly, never left ``running``.

A restarted (or newly assigned) orchestrator catches up and answers every
unanswered delta of its partitions, so a run that was mid-call when its owner
died is normally completed by the next owner. What remains is a run whose
owner vanished and nobody took over, or a run stuck for any other reason:
the watchdog finds those and publishes ``run_failed`` with a readable reason.

Contract:
- A sweep lists the runs of the run-status projection that are ``pending``
  or ``running`` and whose last event is older than ``stall_seconds``
  (``watchdog_stall_seconds``), and, only when ``tools_seconds`` is set
  (``watchdog_tools_seconds``, off by default), ``awaiting_tools`` runs older
  than that: waiting for external tools is a legitimate wait. ``paused`` and
  ended runs are never touched. A run's age is also measured on the
  watchdog's own clock, from the first sweep that saw its row at its
  ``last_offset``: an event's ``occurred_at`` is its producer's clock, and a
  run stamped in the future (or a clock running ahead) is stalled all the
  same once its row has not moved for that long.
- Before failing a run it folds the run from the log (its partition from the
  row's ``first_offset`` to the end, as the orchestrator does): if the run
  has any event after the row's ``last_offset`` (the projection lags behind
  the log) it is left alone for this sweep, so the failure is only ever
  caused by the run's true last event; a run paused in the fold (the
  projection shows the status of an answer that landed after a pause) or
  ended is left alone too. A run left alone is not read again while its
  row does not move (the same row gets the same verdict): a run a hostile
  record made unjudgeable costs one read, not one per sweep.
- The failure is ``run_failed`` (``error_kind`` ``owner_lost`` when the fold
  says an orchestrator has something to do, e.g. an unanswered delta;
  ``stalled`` otherwise; ``awaiting_tools_timeout`` for a tool wait,
  ``approval_timeout`` when tool calls wait for a person's approval; its
  message names :data:`~runwire.errors.NAMED` of those calls at most and counts the rest) whose
  ``causation_id`` is that last event and whose id is
  ``deterministic_event_id(run, last event, WATCHDOG_SLOT)``: two watchdogs (or two sweeps) failing the same stall
  write the same event, which consumers drop as a copy; and the run-status
  projection keeps a run's first ending.
- Its producer is ``runwire-watchdog``: an orchestrator that still holds a
  task for the run cancels it on reading the failure (a terminal event from
  elsewhere), so nothing more is said for the run.
- ``async with Watchdog(settings)`` opens a run-status reader, a run reader
  (a group-less log consumer) and a publisher (or uses the ones given);
  ``sweep()`` does one pass, ``run(stop, interval)`` sweeps until ``stop``
  is set.
  ``runwire serve watchdog`` (:func:`serve_watchdog`) sweeps every quarter of
  the shortest deadline (1 s to 60 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from runwire.contract.codec import Codec, codec_for
from runwire.contract.events import Event, RunFailed, RunStatus
from runwire.errors import RunwireError, listed
from runwire.log import EventWriter, Publisher, publish_retrying
from runwire.log.runs import RunReader
from runwire.projections.runs.fold import Run
from runwire.projections.runs.reader import RunStore
from runwire.services.lifecycle import AsyncService
from runwire.services.orchestrator.run_state import RunState
from runwire.services.run_context import RunContext
from runwire.settings import Settings
from runwire.telemetry import health
from runwire.telemetry.metrics import WATCHDOG_VERDICTS

__all__ = [
    "NAME_CHARS",
    "WATCHDOG_PRODUCER",
    "WATCHDOG_SLOT",
    "Stall",
    "Watchdog",
    "failure_for",
    "serve_watchdog",
]

log = logging.getLogger(__name__)

WATCHDOG_PRODUCER = "runwire-watchdog"
WATCHDOG_SLOT = 5
"""The index of a watchdog failure in ``deterministic_event_id(run, cause, index)``
(distinct from the orchestrator's slots, see ``answers.Slot``)."""

_PAGE = 500

NAME_CHARS = 100
"""Longest tool name a failure shows whole (a held call's name is any text)."""


@dataclass(frozen=True)
class Stall:
    """A run the watchdog failed (or would fail): its last event and why."""

    run_id: str
    status: str
    last_event: Event
    idle_seconds: float
    error_kind: str
    message: str


def failure_for(
    run: Run, state: RunState, last: Event, now: datetime, unmoved_since: datetime | None = None
) -> Stall:
    """The readable failure of a stalled run: its row, its fold from the log and
    its last event (pure); ``unmoved_since``: when the watchdog first saw the row as
    it is (its age, when its stamps say less). Its message names
    :data:`~runwire.errors.NAMED` tool calls at most, each tool name cut to
    :data:`NAME_CHARS`: it stays publishable however many calls, of whatever names,
    the log holds."""
    quiet = run.updated_at if unmoved_since is None else min(run.updated_at, unmoved_since)
    idle = (now - quiet).total_seconds()
    status = state.status.value
    since = f"no event for {idle:.0f}s (since {last.type.value} {last.event_id})"
    if state.status is RunStatus.AWAITING_TOOLS and state.awaiting_approval:
        kind = "approval_timeout"
        waiting = state.awaiting_approval
        held = listed((f"{i} ({_cut(name)})" for i, name in waiting.items()), len(waiting))
        message = f"run {run.run_id} waited for a person's approval too long: {since}; held: {held}"
    elif state.status is RunStatus.AWAITING_TOOLS:
        kind = "awaiting_tools_timeout"
        pending = run.pending_tool_uses
        message = (
            f"run {run.run_id} waited for tool results too long: {since}; "
            f"pending tool calls {listed(pending, len(pending))}"
        )
    elif state.wants_action():
        kind = "owner_lost"
        message = (
            f"run {run.run_id} was left {status}: {since}, and no orchestrator answered "
            "it (its owner stopped and none took its partition over, or it could not act)"
        )
    else:
        kind = "stalled"
        message = f"run {run.run_id} made no progress while {status}: {since}"
    return Stall(run.run_id, status, last, idle, kind, message)


def _cut(text: str) -> str:
    return text if len(text) <= NAME_CHARS else text[:NAME_CHARS] + "…"


class Watchdog(AsyncService):
    """Fails runs nobody will move on; see the module contract."""

    def __init__(
        self,
        settings: Settings,
        *,
        stall_seconds: float | None = None,
        tools_seconds: float | None = None,
        publisher: EventWriter | None = None,
        runs: RunStore | None = None,
        reader: RunReader | None = None,
        codec: Codec | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self.stall_seconds = (
            stall_seconds if stall_seconds is not None else settings.watchdog_stall_seconds
        )
        self.tools_seconds = (
            tools_seconds if tools_seconds is not None else settings.watchdog_tools_seconds
        )
        self._publisher = publisher
        self._runs = runs
        self._codec = codec or codec_for(settings)
        self._now = now
        self._stack: contextlib.AsyncExitStack | None = None
        self._reader = reader
        self._left: dict[str, tuple[int, str]] = {}
        """Run id -> (its row's ``last_offset``, why it was left alone) of the last
        sweep's candidates not failed: read again only once the row moves."""
        self._unmoved: dict[str, tuple[int, datetime]] = {}
        """Run id -> (its row's ``last_offset``, the first sweep that saw it there), of
        the runs the last sweep listed."""

    async def start(self) -> None:
        if self._stack is not None:
            return
        stack = contextlib.AsyncExitStack()
        try:
            if self._runs is None:
                # A shared watchdog watches every tenant's runs (admin).
                self._runs = await stack.enter_async_context(
                    await RunStore.connect(self._settings, admin=self._settings.tenant is None)
                )
            if self._publisher is None:
                self._publisher = await stack.enter_async_context(Publisher(self._settings))
            if self._reader is None:
                self._reader = await stack.enter_async_context(
                    RunReader(self._settings, codec=self._codec)
                )
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack

    async def stop(self) -> None:
        """Close what ``start`` opened (idempotent)."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def run(self, stop: asyncio.Event, interval: float = 30.0) -> None:
        """Sweep every ``interval`` seconds until ``stop`` is set."""
        while not stop.is_set():
            try:
                await self.sweep()
            except Exception:  # one failed sweep must not end the watch
                log.exception("watchdog sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def sweep(self) -> list[Stall]:
        """One pass: fail every stalled run found; returns what was failed."""
        await self.start()
        now = self._now()
        unmoved: dict[str, tuple[int, datetime]] = {}
        candidates = await self._candidates(RunStatus.PENDING, now, self.stall_seconds, unmoved)
        candidates += await self._candidates(RunStatus.RUNNING, now, self.stall_seconds, unmoved)
        if self.tools_seconds is not None:
            candidates += await self._candidates(
                RunStatus.AWAITING_TOOLS, now, self.tools_seconds, unmoved
            )
        self._unmoved = unmoved
        failed: list[Stall] = []
        left: dict[str, tuple[int, str]] = {}
        for run in candidates:
            verdict = self._left.get(run.run_id)
            if verdict is None or verdict[0] != run.last_offset:
                judged = await self._judge(run, now)
                if judged is None:
                    WATCHDOG_VERDICTS.labels("not_judged").inc()
                    continue  # the log could not be read: judged at a later sweep
                if isinstance(judged, tuple):
                    await self._fail(*judged)
                    failed.append(judged[0])
                    continue
                verdict = (run.last_offset, judged)
            left[run.run_id] = verdict  # the same row gets the same verdict
            WATCHDOG_VERDICTS.labels(verdict[1]).inc()
        self._left = left
        return failed

    async def _judge(self, run: Run, now: datetime) -> tuple[Stall, Event] | str | None:
        """A stalled run's failure (and its ``run_failed``), else why the run is left
        alone (the same while its row does not move), or None when its log could not
        be read now."""
        folded = await self._fold(run)
        if folded is None or isinstance(folded, str):
            return folded  # the projection is behind the log: not stalled, or not yet known
        state, last = folded
        if state.terminal or state.paused_by is not None:
            # A pause is a legitimate wait, even after an in-flight answer.
            return "ended" if state.terminal else "paused"
        if state.status is RunStatus.AWAITING_TOOLS and self.tools_seconds is None:
            return "awaiting_tools"
        seen = self._unmoved.get(run.run_id)
        stall = failure_for(run, state, last, now, seen[1] if seen is not None else None)
        try:
            failure = RunContext.of(last).event(
                RunFailed(error_kind=stall.error_kind, message=stall.message, retryable=True),
                producer=WATCHDOG_PRODUCER,
                causation_id=last.event_id,
                index=WATCHDOG_SLOT,
            )
        except RunwireError as e:
            # One run's envelope must not stop the sweep of the others.
            log.warning("run %s: its failure cannot be written (%s); skipped", run.run_id, e)
            return "not_writable"
        return stall, failure

    async def _fail(self, stall: Stall, failure: Event) -> None:
        assert self._publisher is not None
        await publish_retrying(self._publisher, [failure])
        WATCHDOG_VERDICTS.labels(stall.error_kind).inc()
        log.warning("%s: %s", stall.error_kind, stall.message)

    async def _candidates(
        self,
        status: RunStatus,
        now: datetime,
        seconds: float,
        unmoved: dict[str, tuple[int, datetime]],
    ) -> list[Run]:
        """The runs of ``status`` quiet for ``seconds`` by their stamps or by this
        watchdog's clock (noting in ``unmoved`` since when each row is as it is)."""
        assert self._runs is not None
        cutoff = now - timedelta(seconds=seconds)
        out: list[Run] = []
        page: str | None = None
        while True:
            got = await self._runs.list(status=status.value, page=page, limit=_PAGE)
            for r in got.items:
                seen = self._unmoved.get(r.run_id)
                since = seen[1] if seen is not None and seen[0] == r.last_offset else now
                unmoved[r.run_id] = (r.last_offset, since)
                if r.updated_at <= cutoff or since <= cutoff:
                    out.append(r)
            page = got.next_page
            if page is None:
                return out

    async def _fold(self, run: Run) -> tuple[RunState, Event] | str | None:
        """The run folded from its log range and its last event; ``"not_judged"``
        when the log holds an event of the run after ``run.last_offset`` (the row is
        not current) or one it cannot decode; None when the log cannot be read now."""
        assert self._reader is not None
        try:
            scan = await self._reader.scan(run.run_id, run.log_partition, run.first_offset)
        except RunwireError as e:  # the log too slow, or the registry down: judge it later
            log.warning("run %s: its events could not be read (%s); skipped", run.run_id, e)
            return None
        if scan.undecodable:
            # Dead-lettered by the projectors: the run cannot be judged, so it is
            # left alone, and the other runs are still swept.
            log.warning("run %s: record(s) %s not decoded; skipped", run.run_id, scan.undecodable)
            return "not_judged"
        if not scan.records or scan.records[-1].offset > run.last_offset:
            return "not_judged"
        first = scan.records[0]
        state = RunState(
            RunContext.of(first.event), first.offset, max_turns=self._settings.max_turns
        )
        for record in scan.records:
            state.apply(record.event, record.offset)
        return state, scan.records[-1].event


async def serve_watchdog(
    name: str,
    settings: Settings,
    stop: asyncio.Event,
    instance_id: str | None = None,
    max_records: int | None = None,
) -> None:
    """``runwire serve watchdog``: sweep until ``stop`` is set (announces
    ``NAME caught up`` after the first sweep). ``instance_id`` and
    ``max_records`` are accepted for the common service signature; a sweep
    needs neither."""
    swept = asyncio.Event()
    probe = health.register(
        health.Probe(name, lambda: None if swept.is_set() else "the first sweep is not done")
    )
    try:
        async with Watchdog(settings) as watchdog:
            await watchdog.sweep()
            swept.set()
            print(f"{name} caught up", flush=True)
            deadlines = [watchdog.stall_seconds]
            if watchdog.tools_seconds is not None:
                deadlines.append(watchdog.tools_seconds)
            await watchdog.run(stop, interval=max(1.0, min(60.0, min(deadlines) / 4)))
    finally:
        health.unregister(probe)
