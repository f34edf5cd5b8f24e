"""The run-status projection kept in memory (the twin of :class:`RunsProjection`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from runwire.log.records import SourceRecord
from runwire.projections.runs.fold import Erasure, RunRow, fold_batch
from runwire.projections.runs.projection import NAME
from runwire.projections.runtime.inmem import InMemoryProjection
from runwire.projections.runtime.protocol import Rejection


@dataclass
class RunsState:
    """The rows, and what erasure keeps (the twin of the erasure tables)."""

    rows: dict[str, RunRow] = field(default_factory=dict)
    erasure: Erasure = field(default_factory=Erasure)


class InMemoryRuns(InMemoryProjection[RunsState]):
    """Reads ``run_topic``, and ``session_topic`` (when given) for session deletions."""

    def __init__(self, run_topic: str, session_topic: str | None = None) -> None:
        topics = (run_topic,) if session_topic is None else (run_topic, session_topic)
        super().__init__(NAME, topics, RunsState())
        self._session_topic = session_topic

    def remember(self, record: SourceRecord) -> bool:
        return True

    def fold(self, state: RunsState, records: Sequence[SourceRecord]) -> list[Rejection]:
        outcome = fold_batch(
            state.rows, records, erasure=state.erasure, session_topic=self._session_topic
        )
        return outcome.rejections
