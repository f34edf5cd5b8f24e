"""The run-status projection: one row per run, folded from the run-events topic
(and the session-events topic's ``session_deleted``, which erases a session's runs).

Rules: :mod:`runwire.projections.runs.fold`. Reading: :class:`RunStore`.
"""

from runwire.projections.runs.fold import Run
from runwire.projections.runs.projection import RunsProjection
from runwire.projections.runs.reader import RunStore

__all__ = ["Run", "RunStore", "RunsProjection"]
