"""On PostgreSQL, trigram indexes for the review page's free-text search (object, message, actor), so that a rare
word is found through the index instead of by reading the whole table. The expressions are the ones Django
writes for `icontains` (UPPER(column::text) LIKE UPPER(%s)). pg_trgm is a trusted extension (PostgreSQL 13+):
the database's owner may create it. Elsewhere (SQLite) the search scans, which is fine at that size."""

from django.db import migrations

COLUMNS = ("object_repr", "message", "actor_label")
CREATE = ["CREATE EXTENSION IF NOT EXISTS pg_trgm"] + [
    f"CREATE INDEX IF NOT EXISTS audit_{c}_trgm ON audit_auditentry USING gin (UPPER({c}::text) gin_trgm_ops)" for c in COLUMNS
]
DROP = [f"DROP INDEX IF EXISTS audit_{c}_trgm" for c in COLUMNS]


def _on_postgresql(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for sql in statements:
                schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_append_only_trigger")]

    operations = [migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP))]
