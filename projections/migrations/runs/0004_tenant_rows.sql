-- Row-level security by tenant (docs/tenants.md; the function is the
-- runtime's). The views are security_invoker (view.sql).
SELECT runwire_rows_by_tenant('run_status__{{gen}}');
