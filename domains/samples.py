"""Memory over time, for the domain page's chart, with bounded growth.

The poller writes raw samples of running domains (one bulk insert per poll): a domain's sample whenever its
balloon target or actual size (or its state) changed, and otherwise one per SAMPLE_EVERY_S (sample_due), so
that a flat line still reaches the present. A sample on every poll would be one row per domain every 5 s: on
10,000 domains a quarter of the poll's database time and 7 million rows an hour. A periodic task keeps the
table bounded: raw samples older than SAMPLE_RAW_WINDOW_S are averaged into one sample per minute, and
per-minute samples older than SAMPLE_KEEP_S are dropped. Memory is in KiB, as everywhere.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.db.models import Avg
from django.db.models.functions import TruncMinute
from django.utils import timezone

RAW = 0
PER_MINUTE = 60


class MemorySample(models.Model):
    domain = models.ForeignKey("domains.Domain", on_delete=models.CASCADE, related_name="+", db_index=False)
    at = models.DateTimeField()
    # Seconds each sample stands for: RAW (one poll) or PER_MINUTE (an average).
    resolution = models.PositiveSmallIntegerField(default=RAW)
    memory_kib = models.BigIntegerField()  # the balloon target
    actual_kib = models.BigIntegerField(null=True)
    used_kib = models.BigIntegerField(null=True)
    available_kib = models.BigIntegerField(null=True)

    class Meta:
        app_label = "domains"
        # The chart reads one domain over a time range; compaction reads one resolution before a time.
        indexes = [
            models.Index(fields=["domain", "at"], name="domains_mem_domain__e0b8a4_idx"),
            models.Index(fields=["resolution", "at"], name="domains_mem_resolut_5b1f0e_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.domain_id} at {self.at:%H:%M:%S}: {self.memory_kib // 1024} MiB"


SAMPLE_FIELDS = ["domain", "at", "resolution", "memory_kib", "actual_kib", "used_kib", "available_kib"]


def sample_due(domain_id: int, last_poll: datetime | None, now: datetime) -> bool:
    """Whether a domain's periodic sample falls between its previous poll and this one.

    Time is cut into SAMPLE_EVERY_S slots, shifted per domain by its id, so that each poll writes an even share
    of the fleet's samples rather than all of them at once every SAMPLE_EVERY_S. A first poll always samples.
    """
    every = settings.SAMPLE_EVERY_S
    if last_poll is None or every <= 0:
        return True
    offset = domain_id % every
    return (now.timestamp() + offset) // every != (last_poll.timestamp() + offset) // every


def record_samples(domains, at: datetime) -> int:
    """One raw sample per running domain, in one bulk insert; called by the poller inside its write."""
    from balloonweb.bulk import insert_rows

    rows = [
        (d.pk, at, RAW, d.memory_kib, d.actual_kib, d.used_kib, d.available_kib)
        for d in domains
        if d.pk is not None and d.is_running
    ]
    return insert_rows(MemorySample, SAMPLE_FIELDS, rows)


def compact(now: datetime | None = None) -> dict:
    """Average old raw samples per domain and minute, then drop what is older than the keep window."""
    now = now or timezone.now()
    # Whole minutes only, so that a minute is never averaged from half its samples.
    raw_before = (now - timedelta(seconds=settings.SAMPLE_RAW_WINDOW_S)).replace(second=0, microsecond=0)
    old_raw = MemorySample.objects.filter(resolution=RAW, at__lt=raw_before)
    with transaction.atomic():
        minutes = (
            old_raw.annotate(minute=TruncMinute("at"))
            .values("domain_id", "minute")
            .annotate(
                memory=Avg("memory_kib"), actual=Avg("actual_kib"), used=Avg("used_kib"), available=Avg("available_kib")
            )
            .order_by()
        )
        averaged = [
            MemorySample(
                domain_id=m["domain_id"], at=m["minute"], resolution=PER_MINUTE, memory_kib=int(m["memory"]),
                actual_kib=_int(m["actual"]), used_kib=_int(m["used"]), available_kib=_int(m["available"]),
            )
            for m in minutes
        ]
        MemorySample.objects.bulk_create(averaged, batch_size=2000)
        raw_deleted, _ = old_raw.delete()
    dropped, _ = MemorySample.objects.filter(at__lt=now - timedelta(seconds=settings.SAMPLE_KEEP_S)).delete()
    return {"averaged": len(averaged), "raw_deleted": raw_deleted, "dropped": dropped}


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def series(domain_id: int, since: datetime) -> dict[str, list]:
    """The chart's columns: unix seconds and MiB (None where the guest gave no figure), oldest first."""
    rows = (
        MemorySample.objects.filter(domain_id=domain_id, at__gte=since)
        .order_by("at")
        .values_list("at", "memory_kib", "actual_kib", "used_kib", "available_kib")
    )
    columns: dict[str, list] = {"t": [], "target": [], "actual": [], "used": [], "available": []}
    for at, *values in rows:
        columns["t"].append(int(at.timestamp()))
        for name, kib in zip(("target", "actual", "used", "available"), values):
            columns[name].append(None if kib is None else round(kib / 1024, 1))
    return columns
