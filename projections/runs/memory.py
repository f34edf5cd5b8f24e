"""The run-status projection kept in memory (the twin of :class:`RunsProjection`)."""

from __future__ import annotations

from collections.abc import Sequence

from runwire.projections.runs.fold import RunRow, fold_batch
from runwire.projections.runs.projection import NAME
from runwire.projections.runtime.memory import InMemoryProjection
from runwire.projections.runtime.protocol import Rejection, SourceRecord


class InMemoryRuns(InMemoryProjection[dict[str, RunRow]]):
    def __init__(self, run_topic: str) -> None:
        super().__init__(NAME, (run_topic,), {})

    def remember(self, record: SourceRecord) -> bool:
        return True

    def fold(self, state: dict[str, RunRow], records: Sequence[SourceRecord]) -> list[Rejection]:
        return fold_batch(state, records)[1]
