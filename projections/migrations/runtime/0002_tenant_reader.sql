-- The role tenant-scoped readers take for each transaction (docs/tenants.md):
-- row-level security policies name it, so it sees only the rows of the tenant
-- in the runwire.tenant setting. Roles are the cluster's, not the schema's:
-- another deployment may have made it already (or be making it now).
DO $$
BEGIN
    CREATE ROLE runwire_tenant_reader NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END $$;

-- The projectors' role (the one connecting) must be able to become it.
DO $$
BEGIN
    IF NOT pg_has_role(current_user, 'runwire_tenant_reader', 'MEMBER') THEN
        EXECUTE format('GRANT runwire_tenant_reader TO %I', current_user);
    END IF;
END $$;

DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO runwire_tenant_reader', current_schema());
END $$;

-- The one way a projection table is kept by tenant (each projection set's
-- tenant_rows migration calls it per table that readers read): row-level
-- security on, the role sees only the rows of the tenant in runwire.tenant
-- (none when it is unset, never a row without a tenant), and may read the
-- table. The projectors own the tables, so the policy does not apply to them.
CREATE FUNCTION runwire_rows_by_tenant(copy regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', copy);
    EXECUTE format(
        'CREATE POLICY tenant_rows ON %s FOR SELECT TO runwire_tenant_reader '
        'USING (tenant = current_setting(''runwire.tenant'', true))',
        copy
    );
    EXECUTE format('GRANT SELECT ON %s TO runwire_tenant_reader', copy);
END $$;
