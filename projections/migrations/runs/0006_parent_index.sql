-- A run's children (runs it started through agent tools) by parent_run_id.
CREATE INDEX run_status__{{gen}}_parent ON run_status__{{gen}} (parent_run_id)
    WHERE parent_run_id IS NOT NULL;
