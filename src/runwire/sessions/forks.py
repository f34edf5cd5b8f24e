"""Forks: a session that begins with another's history up to a point, shared, not copied.

Contract:
- A fork is ``session_created`` (the caller owns it; the parent's metadata is
  copied, it is small) and ``session_forked`` on the new session's
  partition. ``session_forked`` names the parent, the parent's runs that hold
  the history up to the fork point (its own and, for a fork of a fork, the
  runs of its prefix), the offset the last of them is cut at (always one of
  that run's records), where earlier ones are cut (``cuts``: a fork of a fork
  whose parent's prefix ends inside a run) and the turn the prefix ends in.
  No message is copied: reads fold those runs from the log.
- Two ways to name the point: the end of a turn (``plan_fork``), or a run of
  the session's history and a log offset of that run's partition
  (``plan_fork_at``): the history up to that run, then the run as of that
  offset (what time travel serves, :mod:`runwire.projections.transcripts.history`).
  An offset between two of the run's records cuts after the earlier one.
- A cut never splits a tool_use from its tool_result: an offset at which the
  run has a tool call open (an assistant message's tool_use without all its
  results after it) is refused, with the nearest whole points before and
  after it in the error; nothing is moved silently. ``fork_points`` lists a
  run's records with whether a fork may cut there.
- A fork's history is its *prefix* (those runs, the last one up to the cut)
  then its own runs; turns are numbered over both. A ``clear()`` of the fork
  hides the prefix too (a clear always comes after the fork).
- A prefix run erased with its session (the parent, or an ancestor, deleted
  or erased) is gone from every fork's prefix as well: erasure reaches what
  was shared. The fork keeps its own turns. Deleting a fork changes nothing
  of its parent.
- Forking refuses, before anything is written, with
  :class:`~runwire.errors.InputError` naming the field: a turn the session
  does not have (``turn``); a run not in the session's history (``at_run``;
  runs hidden by a clear are not in it); an offset before the run's first
  record or after its last one in that history (``at_offset``), or inside an
  open tool call (``at_offset``). A session of another user or tenant, or a
  deleted one, is :class:`~runwire.errors.NotFoundError` (from
  :meth:`AsyncSession.open`).
- Backends that fork (:class:`ForkingBackend`: the log backend, the in-memory
  twin) give the lineage, a :class:`ForkLog` to read its runs' records with
  their offsets, the prefix and the forks of a session; the planning here is
  the same for both.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from runwire.contract.events import Event, SessionForked
from runwire.errors import InputError
from runwire.projections.transcripts.history import (
    SessionAsOf,
    TranscriptHistory,
    cut_at_turn,
    turn_starts,
)
from runwire.sessions.protocol import SessionInfo
from runwire.transcript.errors import LedgerError
from runwire.transcript.ledger import TranscriptBuilder
from runwire.transcript.messages import Message, ToolResultPart, ToolUsePart

__all__ = [
    "ForkLog",
    "ForkPoint",
    "ForkingBackend",
    "Lineage",
    "Record",
    "fork_points",
    "history_at",
    "history_of",
    "lineage",
    "open_tool_calls",
    "plan",
    "plan_fork",
    "plan_fork_at",
]


class Record(Protocol):
    """A run's record as read back: its offset in the run's partition, its event."""

    @property
    def offset(self) -> int: ...

    @property
    def event(self) -> Event: ...


class ForkLog(Protocol):
    """Where a fork reads runs' records (:class:`TranscriptHistory` on the log)."""

    async def records_now(
        self,
        run_ids: Sequence[str],
        bounds: Mapping[str, int] | None = None,
        *,
        skip_erased: bool = False,
    ) -> Mapping[str, Sequence[Record]]:
        """Each run's records in log order, up to its offset in ``bounds``; runs
        erased with their session left out when ``skip_erased``."""
        ...


@dataclass(frozen=True, slots=True)
class Lineage:
    """The runs a session's history is read from, in order, and where each is cut."""

    run_ids: list[str]
    bounds: dict[str, int]
    prefix: int
    """How many of ``run_ids`` are the shared prefix."""


@runtime_checkable
class ForkingBackend(Protocol):
    """A session backend that forks (see the module contract)."""

    async def lineage(self, info: SessionInfo) -> Lineage:
        """The session's prefix and its visible runs (the writer's own writes included)."""
        ...

    def fork_log(self) -> ForkLog:
        """Reads the lineage's runs with their offsets."""
        ...

    async def prefix(self, info: SessionInfo) -> list[Message]:
        """A fork's shared prefix (nothing for other sessions)."""
        ...

    async def forks_of(self, session_id: str, user_id: str | None) -> list[SessionInfo]:
        """The sessions forked from ``session_id`` (``user_id``'s)."""
        ...


@dataclass(frozen=True, slots=True)
class ForkPoint:
    """A record of a run: where a fork at a position could cut it."""

    offset: int
    event_type: str
    open_tool_calls: tuple[str, ...]
    """tool_use ids still waiting for their result once the record is applied."""
    turn_starts: int
    """Turn starts in the run up to and including the record."""

    @property
    def whole(self) -> bool:
        """Whether a fork may cut here (no tool call open)."""
        return not self.open_tool_calls


def lineage(info: SessionInfo, own_run_ids: Sequence[str]) -> Lineage:
    """The session's prefix (when it is a fork and was not cleared since) and its own runs."""
    prefix: list[str] = []
    bounds: dict[str, int] = {}
    fork = info.fork
    if fork is not None and info.cleared_at is None and fork["run_ids"]:
        prefix = list(fork["run_ids"])
        # Earlier cut runs (a fork of a fork cut inside its prefix), then the last.
        bounds.update({r: int(o) for r, o in (fork.get("cuts") or {}).items() if r in prefix})
        bounds[prefix[-1]] = int(fork["through_offset"])
    own = [r for r in own_run_ids if r not in bounds and r not in prefix]
    return Lineage([*prefix, *own], bounds, len(prefix))


def _fold(run_id: str, records: Sequence[Record]) -> list[Message]:
    builder = TranscriptBuilder(run_id)
    for record in records:
        try:
            builder.apply(record.event)
        except LedgerError:
            continue  # the projector dead-lettered it: it changed nothing
    return builder.messages()


def open_tool_calls(messages: Sequence[Message]) -> tuple[str, ...]:
    """The tool_use ids of the last assistant message that have no result after it."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role != "assistant":
            continue
        uses = [p.id for p in messages[i].parts if isinstance(p, ToolUsePart)]
        answered = {
            p.tool_use_id
            for m in messages[i + 1 :]
            for p in m.parts
            if isinstance(p, ToolResultPart)
        }
        return tuple(u for u in uses if u not in answered)
    return ()


def fork_points(run_id: str, records: Sequence[Record]) -> list[ForkPoint]:
    """Each of the run's records with the state a cut right after it leaves."""
    builder = TranscriptBuilder(run_id)
    out: list[ForkPoint] = []
    state: tuple[tuple[str, ...], int] = ((), 0)
    for record in records:
        changed = False
        # A record the ledger refuses was refused by the projector too: the point
        # holds what came before it.
        with contextlib.suppress(LedgerError):
            changed = builder.apply(record.event)
        if changed:  # messages are built only when a record changed them
            messages = builder.messages()
            state = (open_tool_calls(messages), len(turn_starts(messages)))
        out.append(ForkPoint(record.offset, str(record.event.type), *state))
    return out


async def history_of(log: ForkLog, line: Lineage) -> list[tuple[str, list[Message]]]:
    """Each run of the lineage with its messages, read from the log (erased runs left out)."""
    found = await log.records_now(line.run_ids, line.bounds, skip_erased=True)
    return [(r, _fold(r, found[r])) for r in line.run_ids if r in found]


async def history_at(
    history: TranscriptHistory, info: SessionInfo, own_run_ids: Sequence[str], turn: int
) -> SessionAsOf:
    """The session's history (its prefix, then ``own_run_ids``) at the end of ``turn``."""
    line = lineage(info, own_run_ids)
    return await history.session_at(
        info.session_id, line.run_ids, turn, line.bounds, skip_erased=True
    )


async def plan_fork(log: ForkLog, info: SessionInfo, line: Lineage, turn: int) -> SessionForked:
    """The ``session_forked`` payload of forking ``info``'s session at the end of ``turn``."""
    runs = await history_of(log, line)
    flat = [(run_id, m) for run_id, messages in runs for m in messages]
    kept = cut_at_turn([m for _, m in flat], turn, f"session {info.session_id}")
    used = list(dict.fromkeys(run_id for run_id, _ in flat[: len(kept)]))
    last = used[-1]
    in_last = len(turn_starts([m for run_id, m in flat[: len(kept)] if run_id == last]))
    bound = {last: line.bounds[last]} if last in line.bounds else None
    records = (await log.records_now([last], bound))[last]
    # The run's last record before the record that starts its next turn.
    before = [p for p in fork_points(last, records) if p.turn_starts <= in_last]
    if not before:
        raise InputError("turn", f"run {last} has no record before that turn")
    return SessionForked(
        parent_session_id=info.session_id,
        turn=turn,
        run_ids=used,
        through_offset=before[-1].offset,
        cuts=_cuts(used, line),
    )


def _cuts(used: Sequence[str], line: Lineage) -> dict[str, int]:
    """Where the runs before the fork's last one are cut (inside the parent's prefix)."""
    return {r: line.bounds[r] for r in used[:-1] if r in line.bounds}


def _check_run(at_run: object, line: Lineage, session_id: str) -> str:
    if not isinstance(at_run, str) or not at_run:
        raise InputError("at_run", f"a run id, not {at_run!r}")
    if at_run not in line.run_ids:
        raise InputError(
            "at_run",
            f"run {at_run} is not in the history of session {session_id} "
            "(its own runs since its last clear, and its fork prefix)",
        )
    return at_run


def _check_offset(at_offset: object) -> int:
    if not isinstance(at_offset, int) or isinstance(at_offset, bool) or at_offset < 0:
        raise InputError("at_offset", f"a log offset (a whole number >= 0), not {at_offset!r}")
    return at_offset


def _cut_point(run_id: str, points: Sequence[ForkPoint], offset: int, session_id: str) -> int:
    """The index of the point a fork at ``offset`` cuts after (see the module contract)."""
    if not points:
        raise InputError("at_run", f"run {run_id} has no record in session {session_id}")
    first, last = points[0].offset, points[-1].offset
    if offset < first:
        raise InputError(
            "at_offset", f"run {run_id} begins at offset {first}; {offset} is before it"
        )
    if offset > last:
        raise InputError(
            "at_offset",
            f"run {run_id} ends at offset {last} in the history of session {session_id}; "
            f"{offset} is beyond it",
        )
    at = max(i for i, p in enumerate(points) if p.offset <= offset)
    if not points[at].whole:
        before = [p.offset for p in points[:at] if p.whole]
        after = [p.offset for p in points[at + 1 :] if p.whole]
        near = ", ".join(
            [
                *([f"{before[-1]} (before the call)"] if before else []),
                *([f"{after[0]} (after its results)"] if after else []),
            ]
        )
        raise InputError(
            "at_offset",
            f"offset {offset} of run {run_id} is inside an open tool call "
            f"(tool_use {', '.join(points[at].open_tool_calls)} has no tool_result yet): "
            "a fork never splits a tool_use from its result"
            + (f"; whole points nearby: {near}" if near else ""),
        )
    return at


async def plan_fork_at(
    log: ForkLog, info: SessionInfo, line: Lineage, at_run: str, at_offset: int
) -> SessionForked:
    """The ``session_forked`` payload of forking ``info``'s session at offset
    ``at_offset`` of its run ``at_run`` (see the module contract)."""
    offset = _check_offset(at_offset)
    run_id = _check_run(at_run, line, info.session_id)
    upto = line.run_ids[: line.run_ids.index(run_id) + 1]
    found = await log.records_now(upto, line.bounds, skip_erased=True)
    if run_id not in found:
        raise InputError("at_run", f"run {run_id} was erased with its session")
    points = fork_points(run_id, found[run_id])
    at = _cut_point(run_id, points, offset, info.session_id)
    used = [r for r in upto if r in found]
    turns = sum(len(turn_starts(_fold(r, found[r]))) for r in used[:-1])
    return SessionForked(
        parent_session_id=info.session_id,
        turn=turns + points[at].turn_starts,
        run_ids=used,
        through_offset=points[at].offset,
        cuts=_cuts(used, line),
    )


async def plan(
    log: ForkLog,
    info: SessionInfo,
    line: Lineage,
    *,
    turn: int | None = None,
    at_run: str | None = None,
    at_offset: int | None = None,
) -> SessionForked:
    """The ``session_forked`` payload of forking at the end of ``turn``, or at offset
    ``at_offset`` of run ``at_run``: exactly one of the two points."""
    at_position = at_run is not None or at_offset is not None
    if (turn is None) == (not at_position):
        raise InputError("turn", "give a turn, or at_run and at_offset, not both or neither")
    if turn is not None:
        return await plan_fork(log, info, line, turn)
    if at_run is None or at_offset is None:
        raise InputError(
            "at_run" if at_run is None else "at_offset", "a position needs a run and an offset"
        )
    return await plan_fork_at(log, info, line, at_run, at_offset)
