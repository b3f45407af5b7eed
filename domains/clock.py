"""One clock for every machine: the database's.

Workers on several machines stamp jobs (started, heartbeat, finished) and rows (job_wrote_at), and the sweep and
the poller compare those stamps with their own now. Each machine's own clock made that comparison off by the
machines' difference: 30 s behind, a live worker's job was taken for lost and run a second time beside it.
"""

from datetime import datetime

from django.db import connection
from django.utils import timezone


def db_now() -> datetime:
    """The database's time (one machine's clock for all); on SQLite, which only one machine uses, this one's."""
    if connection.vendor != "postgresql":
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")  # not now(): that is the transaction's start
        return cursor.fetchone()[0]
