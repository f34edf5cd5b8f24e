-- What readers see: the live generation. Re-created on every switch.
-- security_invoker: the table's row-level security applies to the reader,
-- not to the view's owner (docs/tenants.md).
DROP VIEW IF EXISTS usage_rollup;
CREATE VIEW usage_rollup WITH (security_invoker = true) AS SELECT * FROM usage_rollup__{{gen}};
GRANT SELECT ON usage_rollup TO runwire_tenant_reader;
