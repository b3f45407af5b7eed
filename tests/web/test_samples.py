"""Memory samples: written by the poller in one insert, averaged per minute, then dropped."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from domains.samples import PER_MINUTE, RAW, MemorySample, compact, record_samples, sample_due, series
from domains.models import Domain

from .conftest import GIB


@pytest.fixture
def foo(small_fleet) -> Domain:
    return small_fleet["foo"]


def test_record_samples_writes_running_domains_in_one_insert(foo, django_assert_num_queries, small_fleet):
    stopped = Domain(host=foo.host, name="off", uuid="00000000-0000-0000-0000-000000000001", state="shutoff", memory_kib=GIB)
    stopped.save()
    foo.actual_kib, foo.available_kib, foo.unused_kib = GIB, 1000 * 1024, 400 * 1024
    with django_assert_num_queries(1):
        assert record_samples([foo, stopped], timezone.now()) == 1
    sample = MemorySample.objects.get()
    assert (sample.domain_id, sample.memory_kib, sample.used_kib, sample.resolution) == (foo.pk, GIB, 600 * 1024, RAW)


@override_settings(SAMPLE_EVERY_S=15)
def test_periodic_samples_draw_a_flat_line_one_per_slot_and_each_poll_writes_a_third():
    """Ten minutes of 5 s polls of 30 unchanging domains: each gets a sample exactly every 15 s (its line reaches
    the present), and every poll writes the same share rather than all domains every third poll."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    polls = [start + timedelta(seconds=5 * i) for i in range(121)]
    steps = list(zip(polls, polls[1:]))
    for domain_id in range(1, 31):
        at = [now for previous, now in steps if sample_due(domain_id, previous, now)]
        assert len(at) == 40 and {b - a for a, b in zip(at, at[1:])} == {timedelta(seconds=15)}
    assert {sum(sample_due(d, previous, now) for d in range(1, 31)) for previous, now in steps} == {10}
    assert sample_due(1, None, start)  # first sight


@override_settings(SAMPLE_RAW_WINDOW_S=3600, SAMPLE_KEEP_S=86400)
def test_compaction_averages_per_minute_then_drops(foo):
    now = timezone.now().replace(second=30, microsecond=0)
    old_minute = (now - timedelta(hours=2)).replace(second=0)
    rows = [
        MemorySample(domain=foo, at=old_minute + timedelta(seconds=5 * i), memory_kib=GIB, actual_kib=(1000 + i) * 1024, used_kib=None, available_kib=None)
        for i in range(12)
    ]
    rows.append(MemorySample(domain=foo, at=now - timedelta(minutes=5), memory_kib=GIB))  # recent: stays raw
    rows.append(MemorySample(domain=foo, at=now - timedelta(days=2), memory_kib=GIB, resolution=PER_MINUTE))  # too old
    MemorySample.objects.bulk_create(rows)
    result = compact(now)
    assert result == {"averaged": 1, "raw_deleted": 12, "dropped": 1}
    kept = list(MemorySample.objects.order_by("at").values_list("resolution", "at", "actual_kib", "used_kib"))
    assert kept == [(PER_MINUTE, old_minute, int(1005.5 * 1024), None), (RAW, now - timedelta(minutes=5), None, None)]
    assert compact(now) == {"averaged": 0, "raw_deleted": 0, "dropped": 0}  # nothing twice


def test_series_are_in_mib_and_unix_seconds(foo, admin_client):
    at = timezone.now() - timedelta(minutes=3)
    MemorySample.objects.create(domain=foo, at=at, memory_kib=GIB, actual_kib=GIB, used_kib=300 * 1024, available_kib=None)
    MemorySample.objects.create(domain=foo, at=at - timedelta(hours=3), memory_kib=GIB)
    data = series(foo.pk, timezone.now() - timedelta(hours=1))
    assert data == {"t": [int(at.timestamp())], "target": [1024.0], "actual": [1024.0], "used": [300.0], "available": [None]}
    response = admin_client.get(f"/domains/{foo.pk}/samples/", {"range": "21600"}).json()
    assert response["range"] == 21600 and len(response["t"]) == 2 and response["unit"] == "MiB"
    assert admin_client.get(f"/domains/{foo.pk}/samples/", {"range": "bogus"}).json()["range"] == 3600
