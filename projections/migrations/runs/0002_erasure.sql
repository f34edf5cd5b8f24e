-- Erasure (session_deleted on the session-events topic). A deleted session's
-- runs have no row in run_status; these two tables keep it that way whatever
-- order the two topics are read in, and through replays.

-- Sessions deleted: a later run event that would give its run one of these
-- sessions erases the run instead of being applied.
CREATE TABLE run_status_deleted_sessions__{{gen}} (
    session_id text PRIMARY KEY,
    deleted_at timestamptz NOT NULL,
    event_id   uuid NOT NULL
);

-- Runs erased with their session: every later event of these is dropped
-- (also those without a session_id, which alone could not say whose they are).
CREATE TABLE run_status_erased_runs__{{gen}} (
    run_id     text PRIMARY KEY,
    session_id text NOT NULL
);
