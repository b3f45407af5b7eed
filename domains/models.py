"""Domains as last observed on their hosts, and the jobs that change them. Memory is in KiB throughout."""

from django.conf import settings
from django.db import models

from hosts.models import RUNNING_STATES, Host


class DomainQuerySet(models.QuerySet):
    def present(self) -> "DomainQuerySet":
        return self.exclude(state=Domain.State.GONE)

    def running(self) -> "DomainQuerySet":
        return self.filter(state__in=RUNNING_STATES)

    def awaiting_restart(self) -> "DomainQuerySet":
        """Running with a maxmem in their persistent config other than the one they run with (Domain.awaits_restart)."""
        return self.running().filter(config_maxmem_kib__gt=0).exclude(config_maxmem_kib=models.F("maxmem_kib"))


class Domain(models.Model):
    class State(models.TextChoices):
        RUNNING = "running", "running"
        BLOCKED = "blocked", "blocked"
        PAUSED = "paused", "paused"
        SHUTDOWN = "shutdown", "shutting down"
        SHUTOFF = "shutoff", "shut off"
        CRASHED = "crashed", "crashed"
        PMSUSPENDED = "pmsuspended", "suspended"
        GONE = "gone", "gone"  # no longer seen on any host

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="domains")
    name = models.CharField(max_length=200)
    uuid = models.UUIDField(unique=True)
    hv_id = models.IntegerField("hypervisor id", null=True, blank=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.SHUTOFF)
    vcpus = models.PositiveIntegerField(default=1)

    # What the hypervisor holds now: the balloon target (current memory) and the live maximum.
    memory_kib = models.BigIntegerField(default=0)
    maxmem_kib = models.BigIntegerField(default=0)
    # The persistent config, which a running domain takes at its next boot.
    config_memory_kib = models.BigIntegerField(default=0)
    config_maxmem_kib = models.BigIntegerField(default=0)
    # Nothing (person or autoscaler) may shrink the domain below this.
    floor_kib = models.BigIntegerField(default=0)

    # Balloon statistics as last observed; null where the driver gave none.
    actual_kib = models.BigIntegerField(null=True, blank=True)
    unused_kib = models.BigIntegerField(null=True, blank=True)
    available_kib = models.BigIntegerField(null=True, blank=True)
    usable_kib = models.BigIntegerField(null=True, blank=True)
    rss_kib = models.BigIntegerField(null=True, blank=True)
    stats_last_update = models.BigIntegerField(null=True, blank=True)  # the guest's own timestamp
    stats_stale = models.BooleanField(default=False)
    cpu_time_ns = models.BigIntegerField(default=0)
    last_seen = models.DateTimeField(null=True, blank=True)
    # When it was last seen starting (inventory.started_again): a boot sets the balloon to the config's memory,
    # so the targets asked for before it no longer apply.
    booted_at = models.DateTimeField(null=True, blank=True)
    # When a job last wrote the row from what the hypervisor said after it: a poll that read the hosts before
    # then leaves the row to the job (the check is in the poll's UPDATE itself, so no timing gets past it).
    job_wrote_at = models.DateTimeField(null=True, blank=True)

    objects = DomainQuerySet.as_manager()

    class Meta:
        ordering = ["host__name", "name"]
        indexes = [models.Index(fields=["host", "name"]), models.Index(fields=["name"])]

    def __str__(self) -> str:
        return self.name

    @property
    def is_running(self) -> bool:
        return self.state in RUNNING_STATES

    @property
    def awaits_restart(self) -> bool:
        """A new maxmem is in the persistent config, which a running domain takes only when it boots again."""
        return self.is_running and bool(self.config_maxmem_kib) and self.config_maxmem_kib != self.maxmem_kib

    @property
    def used_kib(self) -> int | None:
        """Memory the guest uses: what it has available minus what it leaves unused."""
        if self.available_kib is None or self.unused_kib is None:
            return None
        return max(0, self.available_kib - self.unused_kib)

    @property
    def xen_state(self) -> str:
        """The six-letter state column of `xm list`: r b p s c d."""
        flags = {"running": 0, "blocked": 1, "paused": 2, "shutdown": 3, "crashed": 4}
        letters = list("------")
        position = flags.get(self.state)
        if position is not None:
            letters[position] = "rbpscd"[position]
        return "".join(letters)


class Job(models.Model):
    class Kind(models.TextChoices):
        RESIZE = "resize", "resize"
        MAXMEM = "maxmem", "set maxmem"
        MIGRATE = "migrate", "migrate"
        CREATE = "create", "create"
        START = "start", "start"
        SHUTDOWN = "shutdown", "shut down"
        RESTART = "restart", "restart"

    class State(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    UNFINISHED = (State.QUEUED, State.RUNNING)
    ENDED = (State.SUCCEEDED, State.FAILED, State.CANCELLED)
    # Jobs that turn a domain on and off, and those that boot one on their host: until they end, a booting job
    # books its `memory_kib` there (services.booked_by_host, the autoscaler's snapshot).
    POWER = (Kind.START, Kind.SHUTDOWN, Kind.RESTART)
    BOOTING = (Kind.CREATE, Kind.START, Kind.RESTART)
    # Jobs that bring a domain to their target host (which a host in maintenance takes no more of).
    ARRIVING = (Kind.MIGRATE, Kind.CREATE, Kind.START)

    kind = models.CharField(max_length=10, choices=Kind.choices)
    domain = models.ForeignKey(Domain, null=True, blank=True, on_delete=models.CASCADE, related_name="jobs")
    # The host the job acts on (a migration's source); a migration's or a creation's destination.
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="jobs")
    target_host = models.ForeignKey(Host, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    params = models.JSONField(default=dict)

    actor_kind = models.CharField(max_length=12)
    actor_label = models.CharField(max_length=150)
    actor_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    log = models.TextField(blank=True, default="")
    error_code = models.CharField(max_length=40, blank=True, default="")
    error = models.TextField(blank=True, default="")
    queue = models.CharField(max_length=60, default="jobs")
    worker = models.CharField(max_length=200, blank=True, default="")  # the Celery worker that ran it
    attempts = models.PositiveIntegerField(default=0)
    # Who asked a running migration to stop: the worker running it sees this and aborts it.
    stop_requested_by = models.CharField(max_length=150, blank=True, default="")

    created = models.DateTimeField(auto_now_add=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started = models.DateTimeField(null=True, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["domain", "state"]),
            models.Index(fields=["state", "created"]),
            models.Index(fields=["state", "finished"]),
            models.Index(fields=["host", "state"]),
        ]

    def __str__(self) -> str:
        return f"job {self.pk} {self.kind} {self.state}"

    @property
    def is_finished(self) -> bool:
        return self.state not in self.UNFINISHED

    @property
    def duration_s(self) -> float | None:
        if not self.started:
            return None
        from django.utils import timezone

        return ((self.finished or timezone.now()) - self.started).total_seconds()


from .samples import MemorySample  # noqa: E402,F401 - the chart's samples live in their own module
