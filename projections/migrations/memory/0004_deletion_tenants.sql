-- A session is its tenant's (runwire.contract.session_tenant): a deletion
-- removes only the session-scope entries of its own tenant (all of them when
-- it names none), so a tombstone is (session, the deletion's tenant), and a
-- session may have one per tenant that deleted it. NULL: a deletion without a
-- tenant (every entry).
ALTER TABLE memory_session_tombstones__{{gen}} ADD COLUMN tenant text;
DO $$
DECLARE
    pk text;
BEGIN
    SELECT conname INTO pk FROM pg_constraint
        WHERE conrelid = 'memory_session_tombstones__{{gen}}'::regclass AND contype = 'p';
    EXECUTE format('ALTER TABLE memory_session_tombstones__{{gen}} DROP CONSTRAINT %I', pk);
END
$$;
CREATE UNIQUE INDEX memory_session_tombstones__{{gen}}_tenant
    ON memory_session_tombstones__{{gen}} (session_id, tenant) NULLS NOT DISTINCT;
