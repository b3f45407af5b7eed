"""On PostgreSQL, the database itself refuses UPDATE and DELETE of audit entries, whoever asks.

The one exception is `audit archive`, which sets `balloonweb.audit_archive` for its own transaction after it has
written the archive file and a signed checkpoint. A database owner can still drop the trigger or set that
flag; what they cannot do without the HMAC key is leave a chain that `audit verify` accepts. TRUNCATE is not
trapped (the test suite empties tables with it); a truncated log shows as a chain that starts without a
checkpoint, or as a head that no longer matches the one recorded elsewhere (docs/audit.md).
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('balloonweb.audit_archive', true) = 'on' THEN
        RETURN OLD;
    END IF;
    -- No percent signs here: the driver would take them for parameters.
    RAISE EXCEPTION USING
        MESSAGE = 'audit entries are append-only: ' || TG_OP || ' of entry ' || OLD.id || ' refused',
        ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_auditentry;
CREATE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE ON audit_auditentry
    FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_auditentry;
DROP FUNCTION IF EXISTS audit_entry_append_only();
"""


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_chain_and_indexes")]

    operations = [migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP))]
