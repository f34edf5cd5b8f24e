-- One row per session that is not deleted. {{gen}} is the generation (copy).
-- Columns fed by session events (declared_*, metadata, status, ended_at,
-- cleared_at) follow the session's own partition order; columns fed by run
-- events (run counts, first/last run, activity) are order-free aggregates,
-- so any interleaving of the two topics gives the same row.
CREATE TABLE session_index__{{gen}} (
    session_id        text PRIMARY KEY,
    user_id           text,
    tenant            text,
    metadata          jsonb NOT NULL DEFAULT '{}',
    labels            jsonb NOT NULL DEFAULT '{}',
    status            text NOT NULL,
    created_at        timestamptz NOT NULL,
    ended_at          timestamptz,
    cleared_at        timestamptz,
    last_activity_at  timestamptz NOT NULL,
    run_count         integer NOT NULL DEFAULT 0,
    last_run_id       text,
    last_run_at       timestamptz,
    declared          boolean NOT NULL DEFAULT false,
    declared_at       timestamptz,
    declared_user_id  text,
    declared_tenant   text,
    first_seen_at     timestamptz NOT NULL,
    first_run_id      text,
    first_run_at      timestamptz,
    first_run_user_id text,
    first_run_tenant  text
) WITH (fillfactor = 80);

-- A user's sessions, most recently active first, keyset-paged.
CREATE INDEX session_index__{{gen}}_by_user ON session_index__{{gen}} (user_id, last_activity_at, session_id);
CREATE INDEX session_index__{{gen}}_by_status ON session_index__{{gen}} (status, last_activity_at, session_id);
CREATE INDEX session_index__{{gen}}_by_activity ON session_index__{{gen}} (last_activity_at, session_id);
CREATE INDEX session_index__{{gen}}_by_labels ON session_index__{{gen}} USING gin (labels jsonb_path_ops);

-- Deleted sessions: later (or replayed) events of these never bring them back.
CREATE TABLE session_tombstones__{{gen}} (
    session_id text PRIMARY KEY,
    deleted_at timestamptz NOT NULL,
    event_id   uuid NOT NULL
);

-- Event ids this copy has applied (session events and run_started only: the
-- other run events only move order-free maxima, which a duplicate cannot change).
CREATE TABLE session_index_applied__{{gen}} (
    event_id uuid PRIMARY KEY
);
