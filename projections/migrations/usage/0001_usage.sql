-- Usage of model calls (usage events), one row per run, model of a provider
-- and UTC day: calls and token sums. {{gen}} is the generation (copy). Cost
-- is priced when read, so rows hold counts only. tenant is the envelope's.
CREATE TABLE usage_rollup__{{gen}} (
    run_id             text NOT NULL,
    model              text NOT NULL,
    provider           text NOT NULL,
    day                date NOT NULL,
    session_id         text,
    user_id            text,
    agent_id           text,
    tenant             text,
    calls              bigint NOT NULL DEFAULT 0,
    input_tokens       bigint NOT NULL DEFAULT 0,
    output_tokens      bigint NOT NULL DEFAULT 0,
    cache_read_tokens  bigint NOT NULL DEFAULT 0,
    cache_write_tokens bigint NOT NULL DEFAULT 0,
    reasoning_tokens   bigint NOT NULL DEFAULT 0,
    first_at           timestamptz NOT NULL,
    last_at            timestamptz NOT NULL,
    PRIMARY KEY (run_id, model, provider, day)
);
-- Every query bounds the day; a user's (the HTTP API's) and a session's
-- (erasure) rows are found without a scan.
CREATE INDEX usage_rollup_day__{{gen}} ON usage_rollup__{{gen}} (day);
CREATE INDEX usage_rollup_user__{{gen}} ON usage_rollup__{{gen}} (user_id, day);
CREATE INDEX usage_rollup_session__{{gen}} ON usage_rollup__{{gen}} (session_id)
    WHERE session_id IS NOT NULL;

-- Sessions deleted (session_deleted): their rows are gone and later or
-- replayed usage events naming them are dropped, whatever order the two
-- topics are read in.
CREATE TABLE usage_deleted_sessions__{{gen}} (
    session_id text PRIMARY KEY,
    deleted_at timestamptz NOT NULL,
    event_id   uuid NOT NULL
);

-- Event ids this copy has applied (usage events and deletions), per stream
-- with the digest of the body: a re-published event changes nothing, the
-- same id with another body is refused (runwire.contract.identity).
CREATE TABLE usage_applied__{{gen}} (
    event_id uuid NOT NULL,
    stream   text NOT NULL DEFAULT '',
    digest   text,
    PRIMARY KEY (event_id, stream)
);
