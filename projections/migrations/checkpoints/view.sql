-- What readers see: the live generation. Re-created on every switch.
DROP VIEW IF EXISTS checkpoints;
DROP VIEW IF EXISTS checkpoint_values;
DROP VIEW IF EXISTS checkpoint_writes;
CREATE VIEW checkpoints AS SELECT * FROM checkpoints__{{gen}};
CREATE VIEW checkpoint_values AS SELECT * FROM checkpoint_values__{{gen}};
CREATE VIEW checkpoint_writes AS SELECT * FROM checkpoint_writes__{{gen}};
