-- A fork's parent and fork point (session_forked): the parent's runs that
-- hold the shared prefix and where the last of them is cut. Branch listings
-- look sessions up by parent.
ALTER TABLE session_index__{{gen}}
    ADD COLUMN parent_session_id text,
    ADD COLUMN fork jsonb;
CREATE INDEX session_index__{{gen}}_parent
    ON session_index__{{gen}} (parent_session_id)
    WHERE parent_session_id IS NOT NULL;
