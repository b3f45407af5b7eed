"""Writing many rows at once. Django's bulk_update builds one CASE per column per batch and bulk_create
prepares every value through the field API, which takes seconds for the poller's ten thousand rows. Here: on
SQLite one prepared statement run with executemany (a C loop in the driver); on PostgreSQL COPY, which sends
all rows in one stream (executemany there is one statement per row, even pipelined: 1.5 s for 10,000 updates
against 0.35 s by COPY into a temporary table and one UPDATE ... FROM it). Only plain column types are passed
through as they are; the rest go through the field's own adapter.
"""

from collections.abc import Callable

from django.db import connection, models, transaction
from django.db.models import Model

# Values of these fields are what the database takes, as Python holds them.
_PLAIN = (models.IntegerField, models.BooleanField, models.CharField, models.TextField, models.FloatField)


def _adapter(field: models.Field) -> Callable:
    if isinstance(field, _PLAIN) or (field.is_relation and isinstance(field.target_field, models.AutoField)):
        return lambda value: value
    adapted: dict = {}  # a poll stamps every row with the same time: adapt it once

    def adapt(value):
        try:
            return adapted[value]
        except KeyError:
            adapted[value] = result = field.get_db_prep_save(value, connection)
            return result
        except TypeError:  # unhashable (JSON)
            return field.get_db_prep_save(value, connection)

    return adapt


def _columns(model: type[Model], fields: list[str]) -> tuple[list[models.Field], list[str], list[Callable]]:
    model_fields = [model._meta.get_field(name) for name in fields]
    return model_fields, [connection.ops.quote_name(f.column) for f in model_fields], [_adapter(f) for f in model_fields]


def _executemany(sql: str, rows: list) -> None:
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _copy(cursor, table: str, columns: list[str], rows: list) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def update_rows(objects: list[Model], fields: list[str], *, unless_written_since: tuple[str, object] | None = None) -> int:
    """UPDATE each object's `fields` by primary key. Objects must be of one model. `unless_written_since` (a
    field, a value): rows whose field is at or past the value are left as they are, judged by the UPDATE itself,
    on the row as committed when it runs."""
    if not objects:
        return 0
    meta = objects[0]._meta
    model_fields, columns, adapters = _columns(type(objects[0]), fields)
    attnames = [f.attname for f in model_fields]
    rows = [[adapt(getattr(obj, name)) for adapt, name in zip(adapters, attnames)] + [obj.pk] for obj in objects]
    table, pk = connection.ops.quote_name(meta.db_table), connection.ops.quote_name(meta.pk.column)
    condition, since = "", []
    if unless_written_since is not None:
        field = meta.get_field(unless_written_since[0])
        column = f"{table}.{connection.ops.quote_name(field.column)}"
        condition = f" AND ({column} IS NULL OR {column} < %s)"
        since = [field.get_db_prep_save(unless_written_since[1], connection)]
    if connection.vendor != "postgresql":
        assignments = ", ".join(f"{column} = %s" for column in columns)
        _executemany(f"UPDATE {table} SET {assignments} WHERE {pk} = %s{condition}", [row + since for row in rows])
        return len(rows)
    # The temporary table takes its column types from the table itself; it is dropped at once, so that a second
    # call in the same transaction can create it again. No savepoint: the caller's transaction is enough.
    staging = connection.ops.quote_name(f"bulk_{meta.db_table}")
    assignments = ", ".join(f"{column} = staging.{column}" for column in columns)
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE {staging} AS SELECT {', '.join(columns)}, {pk} FROM {table} WITH NO DATA")
        _copy(cursor, staging, columns + [pk], rows)
        cursor.execute(f"UPDATE {table} SET {assignments} FROM {staging} AS staging WHERE {table}.{pk} = staging.{pk}{condition}", since)
        cursor.execute(f"DROP TABLE {staging}")
    return len(rows)


def insert_rows(model: type[Model], fields: list[str], rows: list[tuple]) -> int:
    """INSERT plain value tuples (in the order of `fields`) into the model's table; no ids are returned."""
    if not rows:
        return 0
    _, columns, adapters = _columns(model, fields)
    values = [[adapt(v) for adapt, v in zip(adapters, row)] for row in rows]
    table = connection.ops.quote_name(model._meta.db_table)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            _copy(cursor, table, columns, values)
    else:
        _executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})", values)
    return len(rows)
