"""The memory projection: the current value of every memory entry, in Postgres.

Rules: :mod:`.fold`. Writing: :mod:`.projection` (``MemoryProjection``, the
catalog opener ``open_memory``). Reading: :mod:`.store` (``MemoryEntries``).
Running: :mod:`.service` (with the tombstone-aware decoder the memory topic needs).
"""

from runwire.projections.memory.fold import TombstoneDecoder
from runwire.projections.memory.projection import NAME, MemoryProjection, open_memory
from runwire.projections.memory.reader import MemoryEntries

__all__ = ["NAME", "MemoryEntries", "MemoryProjection", "TombstoneDecoder", "open_memory"]
