"""The checkpoints projection: LangGraph checkpoints, channel values and pending writes.

Rules: :mod:`.fold`. Writing: :mod:`.projection` (``CheckpointsProjection``, the
catalog opener ``open_checkpoints``). Reading: :mod:`.reader` (``Checkpoints``).
The twin: :mod:`.inmem` (``InMemoryCheckpoints``). The saver that writes the
events and reads through the reader is :mod:`runwire.checkpoint`.
"""

from runwire.projections.checkpoints.projection import (
    NAME,
    CheckpointsProjection,
    open_checkpoints,
)
from runwire.projections.checkpoints.reader import Checkpoints

__all__ = ["NAME", "Checkpoints", "CheckpointsProjection", "open_checkpoints"]
