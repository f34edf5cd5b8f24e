"""The run-status projection: one row per run, folded from the run-events topic.

Rules: :mod:`runwire.projections.runs.fold`. Reading: :class:`RunStore`.
"""

from runwire.projections.runs.fold import Run
from runwire.projections.runs.projection import RunsProjection
from runwire.projections.runs.store import RunStore

__all__ = ["Run", "RunStore", "RunsProjection"]
