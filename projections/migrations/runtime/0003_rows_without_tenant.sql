-- The rows without a tenant get a reader of their own (docs/tenants.md): a
-- reader that names no tenant reads them, not every row. The tenant reader
-- role sees a row when its tenant is the one in runwire.tenant, or when it
-- has none and runwire.no_tenant is 'on' (both LOCAL to the reader's
-- transaction; unset, or reset to '' on a pooled connection, they match no
-- row). The admin (the tables' owner) still sees every row.
CREATE OR REPLACE FUNCTION runwire_rows_by_tenant(copy regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', copy);
    EXECUTE format(
        'CREATE POLICY tenant_rows ON %s FOR SELECT TO runwire_tenant_reader '
        'USING (tenant = current_setting(''runwire.tenant'', true) '
        'OR (tenant IS NULL AND current_setting(''runwire.no_tenant'', true) = ''on''))',
        copy
    );
    EXECUTE format('GRANT SELECT ON %s TO runwire_tenant_reader', copy);
END $$;

-- The tables made before: the same rule on their policy.
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT schemaname, tablename FROM pg_policies
        WHERE policyname = 'tenant_rows' AND schemaname = current_schema()
    LOOP
        EXECUTE format(
            'ALTER POLICY tenant_rows ON %I.%I '
            'USING (tenant = current_setting(''runwire.tenant'', true) '
            'OR (tenant IS NULL AND current_setting(''runwire.no_tenant'', true) = ''on''))',
            t.schemaname, t.tablename
        );
    END LOOP;
END $$;
