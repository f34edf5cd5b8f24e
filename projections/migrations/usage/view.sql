-- What readers see: the live generation. Re-created on every switch.
DROP VIEW IF EXISTS usage_rollup;
CREATE VIEW usage_rollup AS SELECT * FROM usage_rollup__{{gen}};
