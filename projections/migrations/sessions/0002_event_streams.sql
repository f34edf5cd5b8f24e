-- An event id names an event within its stream (the records of one key):
-- what the copy has applied is kept per stream, with the digest of its body,
-- so that the same id with another body is refused rather than dropped.
-- Rows kept before have the stream '' and no digest: they match any stream
-- and any body.
ALTER TABLE session_index_applied__{{gen}}
    ADD COLUMN stream text NOT NULL DEFAULT '',
    ADD COLUMN digest text,
    DROP CONSTRAINT session_index_applied__{{gen}}_pkey,
    ADD PRIMARY KEY (event_id, stream);
