"""balloonweb.bulk on the test database: executemany on SQLite, COPY on PostgreSQL (run with DATABASE_URL)."""

import pytest
from django.db import connection, transaction
from django.utils import timezone

from balloonweb.bulk import insert_rows, update_rows
from domains.models import Domain, MemorySample
from domains.samples import RAW, SAMPLE_FIELDS
from hosts.models import Host


def test_update_rows_twice_on_one_table_in_one_transaction(db):
    hosts = [Host.objects.create(name=f"h{i}", uri=f"test:///h{i}") for i in range(3)]
    now = timezone.now()
    for i, host in enumerate(hosts):
        host.last_error, host.total_kib, host.last_seen = f"error {i}", i * 1024, now
    with transaction.atomic():
        assert update_rows(hosts, ["last_error", "total_kib"]) == 3
        assert update_rows(hosts[1:], ["last_seen"]) == 2
    rows = list(Host.objects.order_by("name").values_list("last_error", "total_kib", "last_seen"))
    assert rows == [("error 0", 0, None), ("error 1", 1024, now), ("error 2", 2048, now)]


def test_insert_rows_keeps_nulls_and_times(db):
    host = Host.objects.create(name="h", uri="test:///h")
    domain = Domain.objects.create(host=host, name="d", uuid="00000000-0000-0000-0000-00000000000d", memory_kib=1024)
    at = timezone.now()
    assert insert_rows(MemorySample, SAMPLE_FIELDS, [(domain.pk, at, RAW, 1024, None, 512, None)] * 2) == 2
    assert list(MemorySample.objects.values_list("at", "memory_kib", "actual_kib", "used_kib", "available_kib")) == [(at, 1024, None, 512, None)] * 2


@pytest.mark.skipif(connection.vendor != "postgresql", reason="fillfactor is a PostgreSQL storage option")
def test_the_domain_table_leaves_room_for_heap_only_updates(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = %s", [Domain._meta.db_table])
        assert cursor.fetchone()[0] == ["fillfactor=60"]
