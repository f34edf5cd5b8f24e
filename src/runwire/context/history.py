"""One earlier run of a session, as the context window reads it.

Contract:
- :class:`RunHistory` is a run's canonical messages together with where they
  come from in the log: the run's partition of the run-events topic and the
  first and last offset (inclusive) of the events they were folded from.
  ``messages`` must be exactly :func:`fold_run_events` of the run's events in
  that range; that is what makes a recorded window rebuildable. ``first_ms``
  (the time of the run's first event) is what ``session_cleared`` is honoured
  by.
- :func:`fold_run_events` folds as the transcript projector and its miss path
  do: the run's events in log order through a
  :class:`~runwire.transcript.ledger.TranscriptBuilder`, events of other runs
  and events the ledger refuses skipped (the projector dead-letters those),
  so the cache and a re-read of the log give the same messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from runwire.contract.events import Event
from runwire.transcript.errors import LedgerError
from runwire.transcript.ledger import TranscriptBuilder
from runwire.transcript.messages import Message

__all__ = ["RunHistory", "fold_run_events"]


def fold_run_events(run_id: str, events: Iterable[Event]) -> list[Message]:
    """The canonical messages of ``run_id`` from its events in log order."""
    builder = TranscriptBuilder(run_id)
    for event in events:
        if event.run_id != run_id:
            continue
        try:
            builder.apply(event)
        except LedgerError:
            continue  # refused: the projector dead-lettered it, no transcript holds it
    return builder.messages()


@dataclass(frozen=True, slots=True)
class RunHistory:
    """An earlier run: its messages and the log range they were folded from."""

    run_id: str
    partition: int
    first_offset: int
    last_offset: int
    messages: tuple[Message, ...]
    first_ms: int | None = None

    def __post_init__(self) -> None:
        if self.partition < 0 or self.first_offset < 0 or self.last_offset < self.first_offset:
            raise ValueError(
                f"run {self.run_id}: bad log range partition={self.partition} "
                f"offsets {self.first_offset}..{self.last_offset}"
            )

    @classmethod
    def from_events(
        cls, run_id: str, partition: int, records: Sequence[tuple[int, Event]]
    ) -> RunHistory:
        """A run read from its partition: ``records`` are ``(offset, event)`` in
        log order (events of other runs may be among them and are skipped)."""
        own = [(offset, event) for offset, event in records if event.run_id == run_id]
        if not own:
            raise ValueError(f"run {run_id}: no events of the run among the records")
        first_offset, first = own[0]
        return cls(
            run_id=run_id,
            partition=partition,
            first_offset=first_offset,
            last_offset=own[-1][0],
            messages=tuple(fold_run_events(run_id, (e for _, e in own))),
            first_ms=int(first.occurred_at.timestamp() * 1000),
        )
