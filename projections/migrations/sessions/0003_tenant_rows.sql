-- Row-level security by tenant (docs/tenants.md; the function is the
-- runtime's). The views are security_invoker (view.sql). A tombstone is its
-- session's tenant's: another tenant cannot even learn that an id was deleted.
ALTER TABLE session_tombstones__{{gen}} ADD COLUMN tenant text;
SELECT runwire_rows_by_tenant('session_index__{{gen}}');
SELECT runwire_rows_by_tenant('session_tombstones__{{gen}}');
