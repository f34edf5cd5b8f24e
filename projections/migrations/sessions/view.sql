-- What readers see: the live generation. Re-created on every switch.
-- security_invoker: the tables' row-level security applies to the reader,
-- not to the view's owner (docs/tenants.md).
DROP VIEW IF EXISTS session_index;
DROP VIEW IF EXISTS session_tombstones;
CREATE VIEW session_index WITH (security_invoker = true) AS SELECT * FROM session_index__{{gen}};
CREATE VIEW session_tombstones WITH (security_invoker = true) AS SELECT * FROM session_tombstones__{{gen}};
GRANT SELECT ON session_index, session_tombstones TO runwire_tenant_reader;
