-- What readers see: the live generation. Re-created on every switch.
DROP VIEW IF EXISTS run_status;
CREATE VIEW run_status AS SELECT * FROM run_status__{{gen}};
