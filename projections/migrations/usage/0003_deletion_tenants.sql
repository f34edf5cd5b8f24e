-- A session is its tenant's (runwire.contract.session_tenant): a deletion
-- removes only the usage rows of its own tenant (all of them when it names
-- none), so a tombstone is (session, the deletion's tenant), and a session may
-- have one per tenant that deleted it. NULL: a deletion without a tenant (every
-- row).
ALTER TABLE usage_deleted_sessions__{{gen}} ADD COLUMN tenant text;
DO $$
DECLARE
    pk text;
BEGIN
    SELECT conname INTO pk FROM pg_constraint
        WHERE conrelid = 'usage_deleted_sessions__{{gen}}'::regclass AND contype = 'p';
    EXECUTE format('ALTER TABLE usage_deleted_sessions__{{gen}} DROP CONSTRAINT %I', pk);
END
$$;
CREATE UNIQUE INDEX usage_deleted_sessions__{{gen}}_tenant
    ON usage_deleted_sessions__{{gen}} (session_id, tenant) NULLS NOT DISTINCT;
