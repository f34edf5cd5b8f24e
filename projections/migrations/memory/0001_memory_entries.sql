-- The current value of every memory entry, folded from the compacted memory
-- topic (last write per address wins, a tombstone deletes). {{gen}} is the
-- generation (copy). Keys sort by bytes (COLLATE "C") so that a prefix
-- search walks the primary key.
CREATE TABLE memory_entries__{{gen}} (
    scope      text NOT NULL,
    owner      text NOT NULL,
    key        text COLLATE "C" NOT NULL,
    value      jsonb NOT NULL,
    user_id    text,
    tenant     text,
    updated_at timestamptz NOT NULL,
    event_id   uuid NOT NULL,
    PRIMARY KEY (scope, owner, key)
);

-- Deleted sessions (from the session-events topic): their session-scope
-- entries are gone and later (or replayed) writes to them are ignored.
CREATE TABLE memory_session_tombstones__{{gen}} (
    session_id text PRIMARY KEY,
    deleted_at timestamptz NOT NULL,
    event_id   uuid NOT NULL
);

-- Event ids this copy has applied: a re-published write changes nothing.
CREATE TABLE memory_applied__{{gen}} (
    event_id uuid PRIMARY KEY
);
