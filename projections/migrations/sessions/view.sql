-- What readers see: the live generation. Re-created on every switch.
DROP VIEW IF EXISTS session_index;
DROP VIEW IF EXISTS session_tombstones;
CREATE VIEW session_index AS SELECT * FROM session_index__{{gen}};
CREATE VIEW session_tombstones AS SELECT * FROM session_tombstones__{{gen}};
