"""The database sessions' own settings, on PostgreSQL (the production database, and CI's)."""

import pytest
from django.db import connection

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="session settings of PostgreSQL; CI runs them"),
]


def test_a_session_that_dies_or_idles_in_a_transaction_does_not_hold_its_locks_for_hours():
    """A worker machine frozen inside a transaction held the audit log's lock (every request waits on it) until
    PostgreSQL's default keepalive noticed, two hours later; and for ever if it only froze."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW idle_in_transaction_session_timeout")
        assert cursor.fetchone()[0] == "5min"
        cursor.execute("SHOW tcp_keepalives_idle")
        assert cursor.fetchone()[0] == "30"
