"""Writing many rows at once. Django's bulk_update builds one CASE per column per batch and bulk_create
prepares every value through the field API, which takes seconds for the poller's ten thousand rows. Here: one
prepared statement run with executemany (on SQLite a C loop, on PostgreSQL psycopg's pipeline). Only plain
column types are passed through as they are; the rest go through the field's own adapter.
"""

from collections.abc import Callable

from django.db import connection, models
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


def update_rows(objects: list[Model], fields: list[str]) -> int:
    """UPDATE each object's `fields` by primary key. Objects must be of one model."""
    if not objects:
        return 0
    meta = objects[0]._meta
    model_fields, columns, adapters = _columns(type(objects[0]), fields)
    attnames = [f.attname for f in model_fields]
    rows = [[adapt(getattr(obj, name)) for adapt, name in zip(adapters, attnames)] + [obj.pk] for obj in objects]
    assignments = ", ".join(f"{column} = %s" for column in columns)
    table, pk = connection.ops.quote_name(meta.db_table), connection.ops.quote_name(meta.pk.column)
    _executemany(f"UPDATE {table} SET {assignments} WHERE {pk} = %s", rows)
    return len(rows)


def insert_rows(model: type[Model], fields: list[str], rows: list[tuple]) -> int:
    """INSERT plain value tuples (in the order of `fields`) into the model's table; no ids are returned."""
    if not rows:
        return 0
    _, columns, adapters = _columns(model, fields)
    values = [[adapt(v) for adapt, v in zip(adapters, row)] for row in rows]
    table = connection.ops.quote_name(model._meta.db_table)
    _executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})", values)
    return len(rows)
