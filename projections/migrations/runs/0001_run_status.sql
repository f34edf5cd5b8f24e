-- One row per run. {{gen}} is the generation (copy) these tables belong to.
-- fillfactor leaves room for HOT updates: a row is updated on every event of
-- its run while its indexed columns rarely change.
CREATE TABLE run_status__{{gen}} (
    run_id             text PRIMARY KEY,
    session_id         text,
    agent_id           text,
    turn_id            text,
    user_id            text,
    tenant             text,
    parent_run_id      text,
    status             text NOT NULL,
    phase              text,
    status_reason      text,
    labels             jsonb NOT NULL DEFAULT '{}',
    started_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    ended_at           timestamptz,
    message_count      integer NOT NULL DEFAULT 0,
    tool_call_count    integer NOT NULL DEFAULT 0,
    tool_error_count   integer NOT NULL DEFAULT 0,
    input_tokens       bigint NOT NULL DEFAULT 0,
    output_tokens      bigint NOT NULL DEFAULT 0,
    cache_read_tokens  bigint NOT NULL DEFAULT 0,
    cache_write_tokens bigint NOT NULL DEFAULT 0,
    last_error         jsonb,
    pending_tool_uses  jsonb NOT NULL DEFAULT '[]',
    event_count        integer NOT NULL DEFAULT 0,
    log_partition      integer NOT NULL,
    first_offset       bigint NOT NULL,
    last_offset        bigint NOT NULL
) WITH (fillfactor = 80);

-- Runs of a session in time order (either direction), keyset-paged.
CREATE INDEX run_status__{{gen}}_by_session ON run_status__{{gen}} (session_id, started_at, run_id);
-- Runs by status, newest first.
CREATE INDEX run_status__{{gen}}_by_status ON run_status__{{gen}} (status, started_at, run_id);
-- All runs newest first, and time ranges.
CREATE INDEX run_status__{{gen}}_by_started ON run_status__{{gen}} (started_at, run_id);
-- Label containment (labels @> '{"tenant": "acme"}').
CREATE INDEX run_status__{{gen}}_by_labels ON run_status__{{gen}} USING gin (labels jsonb_path_ops);

-- Event ids this copy has applied: a re-published event changes nothing.
CREATE TABLE run_status_applied__{{gen}} (
    event_id uuid PRIMARY KEY
);
