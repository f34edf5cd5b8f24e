"""Forks: a session that begins with another's history up to a turn, shared, not copied.

Contract:
- A fork is ``session_created`` (the caller owns it; the parent's metadata is
  copied, it is small) and ``session_forked`` on the new session's
  partition. ``session_forked`` names the parent, the turn, the parent's runs
  that hold the history up to that turn (its own and, for a fork of a fork,
  the runs of its prefix) and the offset the last of them is cut at. No
  message is copied: reads fold those runs from the log.
- A fork's history is its *prefix* (those runs, the last one up to the cut)
  then its own runs; turns are numbered over both. A ``clear()`` of the fork
  hides the prefix too (a clear always comes after the fork).
- A prefix run erased with its session (the parent, or an ancestor, deleted
  or erased) is gone from every fork's prefix as well: erasure reaches what
  was shared. The fork keeps its own turns. Deleting a fork changes nothing
  of its parent.
- Forking refuses, before anything is written: a turn the session does not
  have (:class:`~runwire.errors.InputError` naming ``turn``); a session of
  another user, or a deleted one (:class:`~runwire.errors.NotFoundError`,
  from :meth:`AsyncSession.open`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from runwire.contract.events import SessionForked
from runwire.projections.transcripts.history import (
    SessionAsOf,
    TranscriptHistory,
    cut_at_turn,
    turn_starts,
)
from runwire.sessions.protocol import SessionInfo
from runwire.transcript.messages import Message

__all__ = ["Lineage", "history_at", "history_of", "lineage", "plan_fork"]


@dataclass(frozen=True, slots=True)
class Lineage:
    """The runs a session's history is read from, in order, and where each is cut."""

    run_ids: list[str]
    bounds: dict[str, int]
    prefix: int
    """How many of ``run_ids`` are the shared prefix."""


def lineage(info: SessionInfo, own_run_ids: Sequence[str]) -> Lineage:
    """The session's prefix (when it is a fork and was not cleared since) and its own runs."""
    prefix: list[str] = []
    bounds: dict[str, int] = {}
    fork = info.fork
    if fork is not None and info.cleared_at is None and fork["run_ids"]:
        prefix = list(fork["run_ids"])
        bounds[prefix[-1]] = int(fork["through_offset"])
    own = [r for r in own_run_ids if r not in bounds and r not in prefix]
    return Lineage([*prefix, *own], bounds, len(prefix))


async def history_of(history: TranscriptHistory, line: Lineage) -> list[tuple[str, list[Message]]]:
    """Each run of the lineage with its messages, read from the log (erased runs left out)."""
    runs = await history.runs_now(line.run_ids, line.bounds, skip_erased=True)
    return [(r, runs[r]) for r in line.run_ids if r in runs]


async def history_at(
    history: TranscriptHistory, info: SessionInfo, own_run_ids: Sequence[str], turn: int
) -> SessionAsOf:
    """The session's history (its prefix, then ``own_run_ids``) at the end of ``turn``."""
    line = lineage(info, own_run_ids)
    return await history.session_at(
        info.session_id, line.run_ids, turn, line.bounds, skip_erased=True
    )


async def plan_fork(
    history: TranscriptHistory, info: SessionInfo, line: Lineage, turn: int
) -> SessionForked:
    """The ``session_forked`` payload of forking ``info``'s session at the end of ``turn``."""
    runs = await history_of(history, line)
    flat = [(run_id, m) for run_id, messages in runs for m in messages]
    kept = cut_at_turn([m for _, m in flat], turn, f"session {info.session_id}")
    used = list(dict.fromkeys(run_id for run_id, _ in flat[: len(kept)]))
    last = used[-1]
    in_last = [m for run_id, m in flat[: len(kept)] if run_id == last]
    through = await history.cut_offset(last, len(turn_starts(in_last)), line.bounds.get(last))
    return SessionForked(
        parent_session_id=info.session_id, turn=turn, run_ids=used, through_offset=through
    )
