-- The single-writer fence (session_writer_claimed / session_writer_released,
-- folded in the session's partition order): the committed version, the open
-- claim's holder and when it lapses, and whose release made the version.
ALTER TABLE session_index__{{gen}}
    ADD COLUMN version      bigint NOT NULL DEFAULT 0,
    ADD COLUMN writer       text,
    ADD COLUMN writer_until timestamptz,
    ADD COLUMN version_by   text;
