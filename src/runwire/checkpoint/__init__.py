"""A LangGraph checkpointer on runwire: ``RunwireSaver``.

Checkpoints and pending writes are events on the checkpoints topic (keyed by
thread), read back through the checkpoints projection; see
docs/frameworks/langgraph.md. Needs the ``langgraph-checkpoint`` package.

- :mod:`.saver`: ``RunwireSaver`` (LangGraph's ``BaseCheckpointSaver``, async and sync).
- :mod:`.values`: channel values and writes <-> event bytes, list deltas.
- :mod:`.protocol`: the store seam; :mod:`.log_store` (Kafka + Postgres) and
  :mod:`.inmem` (the twin) implement it.
- :mod:`.loop`: the saver's own loop thread.
"""

from runwire.checkpoint.saver import PRODUCER, RunwireSaver

__all__ = ["PRODUCER", "RunwireSaver"]
