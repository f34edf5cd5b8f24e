-- What readers see: the live generation. Re-created on every switch.
DROP VIEW IF EXISTS memory_entries;
DROP VIEW IF EXISTS memory_session_tombstones;
CREATE VIEW memory_entries AS SELECT * FROM memory_entries__{{gen}};
CREATE VIEW memory_session_tombstones AS SELECT * FROM memory_session_tombstones__{{gen}};
