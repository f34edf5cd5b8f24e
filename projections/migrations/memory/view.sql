-- What readers see: the live generation. Re-created on every switch.
-- security_invoker: the tables' row-level security applies to the reader,
-- not to the view's owner (docs/tenants.md). Tenant readers get no grant on
-- the tombstones, which only the projector reads.
DROP VIEW IF EXISTS memory_entries;
DROP VIEW IF EXISTS memory_session_tombstones;
CREATE VIEW memory_entries WITH (security_invoker = true) AS SELECT * FROM memory_entries__{{gen}};
CREATE VIEW memory_session_tombstones WITH (security_invoker = true) AS SELECT * FROM memory_session_tombstones__{{gen}};
GRANT SELECT ON memory_entries TO runwire_tenant_reader;
