-- What readers see: the live generation. Re-created on every switch.
DROP VIEW IF EXISTS checkpoint_index;
DROP VIEW IF EXISTS checkpoint_values;
DROP VIEW IF EXISTS checkpoint_pending_writes;
CREATE VIEW checkpoint_index AS SELECT * FROM checkpoint_index__{{gen}};
CREATE VIEW checkpoint_values AS SELECT * FROM checkpoint_values__{{gen}};
CREATE VIEW checkpoint_pending_writes AS SELECT * FROM checkpoint_pending_writes__{{gen}};
