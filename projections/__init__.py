"""The read models folded from the log, and the runtime they share.

- ``runtime``: the projector (Kafka consumer loop, positions stored with the
  read model, seek on assignment, dead letters, rebuild, lag) and the
  ``Projection`` protocol every read model implements.
- ``runs``: the run-status projection (Postgres) and ``RunStore``.
- ``sessions``: the session index (Postgres) and ``SessionIndex``.
- ``migrations``: ordered SQL files for the Postgres tables and their runner.
- ``reference``: the same folds, pure and in memory (the tests' oracle).
"""
