-- LangGraph checkpoints folded from the checkpoints topic (names apart from
-- LangGraph's own Postgres saver's tables, so both can share a schema). {{gen}} is the
-- generation (copy). Checkpoint ids sort in time order (uuid6), and by bytes
-- (COLLATE "C"), so "newest first" and "before" walk the primary key.
CREATE TABLE checkpoint_index__{{gen}} (
    thread_id            text NOT NULL,
    checkpoint_ns        text COLLATE "C" NOT NULL,
    checkpoint_id        text COLLATE "C" NOT NULL,
    parent_checkpoint_id text,
    checkpoint           jsonb NOT NULL,
    metadata             jsonb NOT NULL,
    run_id               text,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
);
CREATE INDEX checkpoint_index_run__{{gen}} ON checkpoint_index__{{gen}} (run_id) WHERE run_id IS NOT NULL;

-- One row per (channel, version): a whole value (type set), or a delta of an
-- earlier version of a list channel (type NULL; base, keep, items).
CREATE TABLE checkpoint_values__{{gen}} (
    thread_id     text NOT NULL,
    checkpoint_ns text NOT NULL,
    channel       text NOT NULL,
    version       text NOT NULL,
    type          text,
    data          bytea NOT NULL,
    base          text,
    keep          integer NOT NULL DEFAULT 0,
    items         jsonb,
    PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
);

CREATE TABLE checkpoint_pending_writes__{{gen}} (
    thread_id     text NOT NULL,
    checkpoint_ns text NOT NULL,
    checkpoint_id text NOT NULL,
    task_id       text NOT NULL,
    idx           integer NOT NULL,
    task_path     text NOT NULL,
    channel       text NOT NULL,
    type          text NOT NULL,
    data          bytea NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
);

-- Event ids this copy has applied, per stream (thread) with the digest of
-- the body: a re-published event changes nothing, the same id with another
-- body is refused (runwire.contract.identity).
CREATE TABLE checkpoint_applied__{{gen}} (
    event_id uuid NOT NULL,
    stream   text NOT NULL DEFAULT '',
    digest   text,
    PRIMARY KEY (event_id, stream)
);
