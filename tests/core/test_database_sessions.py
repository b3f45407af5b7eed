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


def test_a_worker_whose_clock_is_behind_is_not_taken_for_lost(monkeypatch):
    """Workers on several machines stamped their jobs with their own clocks, and the sweep compared them with its
    own: a worker 30 s behind had its live job taken for lost, and the job ran twice at once."""
    from datetime import timedelta

    from django.utils import timezone

    from domains import jobs
    from domains.models import Job
    from tests.access.conftest import make_domain, make_host

    host = make_host("far", None)
    job = Job.objects.create(kind=Job.Kind.RESIZE, domain=make_domain(host, "d"), host=host, params={"target_kib": 1024 * 1024},
                             actor_kind="cli", actor_label="command line")
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() - timedelta(seconds=30))  # the worker's machine
    assert jobs.claim(job.pk) == jobs.Claim.RUN
    monkeypatch.setattr(timezone, "now", real_now)  # the sweep's machine
    assert jobs.sweep()["requeued"] == 0
    assert Job.objects.get(pk=job.pk).state == Job.State.RUNNING
