"""Writing many rows at once. Django's bulk_update builds one CASE per column per batch and bulk_create
prepares every value through the field API, which takes seconds for the poller's ten thousand rows; one
prepared statement run with executemany takes milliseconds (SQLite runs it in a C loop, psycopg in pipeline
mode). Only plain column types are passed through as they are; the rest go through the field's own adapter.
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


def update_rows(objects: list[Model], fields: list[str]) -> int:
    """UPDATE each object's `fields` by primary key. Objects must be of one model."""
    if not objects:
        return 0
    meta = objects[0]._meta
    model_fields, columns, adapters = _columns(type(objects[0]), fields)
    assignments = ", ".join(f"{column} = %s" for column in columns)
    sql = f"UPDATE {connection.ops.quote_name(meta.db_table)} SET {assignments} WHERE {connection.ops.quote_name(meta.pk.column)} = %s"
    attnames = [f.attname for f in model_fields]
    rows = [[adapt(getattr(obj, name)) for adapt, name in zip(adapters, attnames)] + [obj.pk] for obj in objects]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)
    return len(rows)


def insert_rows(model: type[Model], fields: list[str], rows: list[tuple]) -> int:
    """INSERT plain value tuples (in the order of `fields`) into the model's table; no ids are returned."""
    if not rows:
        return 0
    _, columns, adapters = _columns(model, fields)
    placeholders = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} ({', '.join(columns)}) VALUES ({placeholders})"
    with connection.cursor() as cursor:
        cursor.executemany(sql, [[adapt(v) for adapt, v in zip(adapters, row)] for row in rows])
    return len(rows)
