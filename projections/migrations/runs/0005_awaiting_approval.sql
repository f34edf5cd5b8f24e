-- Tool calls of a run that wait for a person's decision (approval_requested
-- without an approval_decided yet), like pending_tool_uses.
ALTER TABLE run_status__{{gen}}
    ADD COLUMN awaiting_approval jsonb NOT NULL DEFAULT '[]';
