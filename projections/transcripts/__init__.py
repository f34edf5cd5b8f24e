"""The transcript cache: per run, the canonical messages ready for a provider, in Redis.

- :mod:`.projection` - the projection the projector runtime drives (and why
  it is exactly-once in effect);
- :mod:`.store` - the store seam and its commit contract; :mod:`.redis_store`
  (with ``apply.lua``) and :mod:`.memory_store` implement it;
- :mod:`.fold` - folding a run's new records onto its stored state;
- :mod:`.miss` - rebuilding a missing transcript from the log;
- :mod:`.reader` - the read API (``TranscriptCache``);
- :mod:`.rebuild` - building a new generation beside the live one;
- :mod:`.keys` - the key layout.
"""

from runwire.projections.transcripts.projection import NAME, TranscriptProjection
from runwire.projections.transcripts.reader import TranscriptCache

__all__ = ["NAME", "TranscriptCache", "TranscriptProjection"]
