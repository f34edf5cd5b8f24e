-- What readers see: the live generation. Re-created on every switch.
-- security_invoker: the tables' row-level security applies to the reader,
-- not to the view's owner (docs/tenants.md).
DROP VIEW IF EXISTS run_status;
CREATE VIEW run_status WITH (security_invoker = true) AS SELECT * FROM run_status__{{gen}};
GRANT SELECT ON run_status TO runwire_tenant_reader;
