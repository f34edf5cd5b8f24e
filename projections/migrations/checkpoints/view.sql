-- What readers see: the live generation. Re-created on every switch.
-- security_invoker: the tables' row-level security applies to the reader,
-- not to the view's owner (docs/tenants.md).
DROP VIEW IF EXISTS checkpoint_index;
DROP VIEW IF EXISTS checkpoint_values;
DROP VIEW IF EXISTS checkpoint_pending_writes;
CREATE VIEW checkpoint_index WITH (security_invoker = true) AS SELECT * FROM checkpoint_index__{{gen}};
CREATE VIEW checkpoint_values WITH (security_invoker = true) AS SELECT * FROM checkpoint_values__{{gen}};
CREATE VIEW checkpoint_pending_writes WITH (security_invoker = true) AS SELECT * FROM checkpoint_pending_writes__{{gen}};
GRANT SELECT ON checkpoint_index, checkpoint_values, checkpoint_pending_writes
    TO runwire_tenant_reader;
