-- A checkpoint is (tenant, thread id, ...): two tenants using the same thread id
-- have two threads, in every key (docs/tenants.md). NULLS NOT DISTINCT: the
-- rows written without a tenant (a shared process) are one more owner.
-- The tenant leads each key: every query names it (row-level security, or the
-- saver's own tenant), so "newest first" and "before" still walk the key.
ALTER TABLE checkpoint_index__{{gen}} DROP CONSTRAINT checkpoint_index__{{gen}}_pkey;
ALTER TABLE checkpoint_index__{{gen}} ADD CONSTRAINT checkpoint_index_key__{{gen}}
    UNIQUE NULLS NOT DISTINCT (tenant, thread_id, checkpoint_ns, checkpoint_id);
ALTER TABLE checkpoint_values__{{gen}} DROP CONSTRAINT checkpoint_values__{{gen}}_pkey;
ALTER TABLE checkpoint_values__{{gen}} ADD CONSTRAINT checkpoint_values_key__{{gen}}
    UNIQUE NULLS NOT DISTINCT (tenant, thread_id, checkpoint_ns, channel, version);
ALTER TABLE checkpoint_pending_writes__{{gen}} DROP CONSTRAINT checkpoint_pending_writes__{{gen}}_pkey;
ALTER TABLE checkpoint_pending_writes__{{gen}} ADD CONSTRAINT checkpoint_pending_writes_key__{{gen}}
    UNIQUE NULLS NOT DISTINCT (tenant, thread_id, checkpoint_ns, checkpoint_id, task_id, idx);
