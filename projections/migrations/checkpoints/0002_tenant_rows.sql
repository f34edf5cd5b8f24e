-- The tenant of every checkpoint row (from its event's envelope), and
-- row-level security by it (docs/tenants.md; the function is the runtime's).
-- The views are security_invoker (view.sql).
ALTER TABLE checkpoint_index__{{gen}} ADD COLUMN tenant text;
ALTER TABLE checkpoint_values__{{gen}} ADD COLUMN tenant text;
ALTER TABLE checkpoint_pending_writes__{{gen}} ADD COLUMN tenant text;
SELECT runwire_rows_by_tenant('checkpoint_index__{{gen}}');
SELECT runwire_rows_by_tenant('checkpoint_values__{{gen}}');
SELECT runwire_rows_by_tenant('checkpoint_pending_writes__{{gen}}');
