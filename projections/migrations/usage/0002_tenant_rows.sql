-- Row-level security by tenant (docs/tenants.md; the function is the
-- runtime's). The view is security_invoker (view.sql).
SELECT runwire_rows_by_tenant('usage_rollup__{{gen}}');
