from django.db import models

from balloonweb.access.models import Team


class Host(models.Model):
    class Status(models.TextChoices):
        ONLINE = "online", "Online"
        OFFLINE = "offline", "Offline"
        ERROR = "error", "Error"

    name = models.CharField(max_length=100, unique=True)
    uri = models.CharField("libvirt URI", max_length=500)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT, related_name="hosts")
    # Jobs for this host go to the Celery queue "jobs.<queue_group>" when set, so that a group of hosts can
    # have workers of its own (near the hosts, with their credentials); empty means the default queue "jobs".
    queue_group = models.CharField(max_length=50, blank=True, default="")

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OFFLINE)
    last_error = models.TextField(blank=True, default="")
    last_seen = models.DateTimeField(null=True, blank=True)
    status_changed = models.DateTimeField(null=True, blank=True)

    # Memory in KiB. total_kib is what the hypervisor reports; capacity_kib, when set, is what an operator
    # allows this host to hand out (a simulated host's size, or a deliberate overcommit).
    total_kib = models.BigIntegerField(default=0)
    capacity_kib = models.BigIntegerField(null=True, blank=True)
    reserved_kib = models.BigIntegerField("memory reserved for the host itself (KiB)", default=0)
    cpus = models.PositiveIntegerField(default=0)
    # Being emptied for maintenance: no domain may come here (migrations, creations, the autoscaler's moves and
    # what-ifs) until an admin ends it (domains/maintenance.py).
    maintenance = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def usable_kib(self) -> int:
        """Memory that running domains may take: capacity minus the host's own reserve."""
        return max(0, (self.capacity_kib or self.total_kib) - self.reserved_kib)

    @property
    def celery_queue(self) -> str:
        return queue_name("jobs", self.queue_group)

    @property
    def is_online(self) -> bool:
        return self.status == self.Status.ONLINE


def queue_name(kind: str, queue_group: str) -> str:
    """Jobs and polls have queues of their own, so that workers of their own serve them (run.sh): a long
    migration then never delays a poll."""
    return f"{kind}.{queue_group}" if queue_group else kind


RUNNING_STATES = ("running", "blocked", "paused")
