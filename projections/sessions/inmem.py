"""The session index kept in memory (the twin of :class:`SessionsProjection`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from runwire.log.records import SourceRecord
from runwire.projections.runtime.inmem import InMemoryProjection
from runwire.projections.runtime.protocol import Rejection
from runwire.projections.sessions.fold import SessionRow, fold_batch, remembered
from runwire.projections.sessions.projection import NAME


@dataclass
class SessionState:
    rows: dict[str, SessionRow] = field(default_factory=dict)
    tombstones: set[str] = field(default_factory=set)


class InMemorySessions(InMemoryProjection[SessionState]):
    def __init__(self, session_topic: str, run_topic: str) -> None:
        super().__init__(NAME, (session_topic, run_topic), SessionState())
        self._session_topic = session_topic

    def remember(self, record: SourceRecord) -> bool:
        return remembered(record, self._session_topic)

    def fold(self, state: SessionState, records: Sequence[SourceRecord]) -> list[Rejection]:
        return fold_batch(state.rows, state.tombstones, records, self._session_topic).rejections
