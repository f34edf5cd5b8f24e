"""SQL migrations of the Postgres read models (ordered files, a version table, a runner)."""
