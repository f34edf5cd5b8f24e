"""The transcript cache: per run, the canonical messages ready for a provider, in Redis.

See docs/transcripts.md. Modules:

- :mod:`.projection` - the projection the projector runtime drives (and why
  it is exactly-once in effect); :mod:`.fold` folds a run's new records;
- :mod:`.store` - the store seam and its commit contract; :mod:`.redis_store`
  (``apply.lua``, ``snapshot.lua``, ``begin.lua``, ``switch.lua``) and
  :mod:`.inmem` implement it; :mod:`.keys` is the key layout and
  :mod:`.body` how a transcript is stored;
- :mod:`.miss` - rebuilding a missing transcript from the log;
- :mod:`.reader` - the read API (``TranscriptCache``); :mod:`.turns` cuts a
  session to its last turns;
- :mod:`.rebuild` - a new generation beside the live one;
- :mod:`.follow` - tailing a run live from the log;
- :mod:`.service` - the catalog's opener (``serve projector-transcripts``).
"""

from runwire.projections.transcripts.projection import NAME, TranscriptProjection
from runwire.projections.transcripts.reader import TranscriptCache

__all__ = ["NAME", "TranscriptCache", "TranscriptProjection"]
