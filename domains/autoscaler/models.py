"""The autoscaler's policies, its memory between cycles, and the decisions it keeps.

Times the engine keeps between cycles are seconds since the epoch (FloatField), as the engine counts them;
the times people read (`Decision.at`) are datetimes. Memory is in KiB.
"""

from django.conf import settings
from django.db import models

from balloonweb.access.models import Team
from domains.models import Domain, Job
from hosts.models import Host

from . import snapshot as engine
from .plan import RESIZE


class Mode(models.TextChoices):
    OFF = engine.MODE_OFF, "off"
    RECOMMEND = engine.MODE_RECOMMEND, "recommend"
    AUTOMATIC = engine.MODE_AUTOMATIC, "automatic"


class HostMode(models.TextChoices):
    INHERIT = "inherit", "as its team"
    OFF = engine.MODE_OFF, "off"
    RECOMMEND = engine.MODE_RECOMMEND, "recommend"
    AUTOMATIC = engine.MODE_AUTOMATIC, "automatic"


_DOMAIN = engine.DomainPolicy()
_HOST = engine.HostPolicy()


class TeamPolicy(models.Model):
    """The mode of a team's hosts unless a host says otherwise."""

    team = models.OneToOneField(Team, on_delete=models.CASCADE, related_name="autoscale_policy")
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.OFF)

    def __str__(self) -> str:
        return f"autoscaling of {self.team}: {self.mode}"


class HostPolicy(models.Model):
    host = models.OneToOneField(Host, on_delete=models.CASCADE, related_name="autoscale_policy")
    mode = models.CharField(max_length=10, choices=HostMode.choices, default=HostMode.INHERIT)
    target_use = models.FloatField(
        default=_HOST.target_use, help_text="share of usable memory planned as targets; the rest only for guests out of memory"
    )
    migrations_in = models.PositiveSmallIntegerField(default=_HOST.migrations_in, help_text="at once")
    migrations_out = models.PositiveSmallIntegerField(default=_HOST.migrations_out, help_text="at once")
    migrations_per_hour = models.PositiveSmallIntegerField(default=_HOST.migrations_per_hour)

    def __str__(self) -> str:
        return f"autoscaling of {self.host}: {self.mode}"


class DomainPolicy(models.Model):
    domain = models.OneToOneField(Domain, on_delete=models.CASCADE, related_name="autoscale_policy")
    free_share = models.FloatField(default=_DOMAIN.free_share, help_text="share of the guest's memory to keep free")
    deadband_share = models.FloatField(default=_DOMAIN.deadband_share, help_text="smaller changes are not made")
    priority = models.SmallIntegerField(default=_DOMAIN.priority, help_text="lower gives up its headroom first")
    shrink_cooldown_s = models.FloatField(default=_DOMAIN.shrink_cooldown_s)
    migrate_cooldown_s = models.FloatField(default=_DOMAIN.migrate_cooldown_s)

    def __str__(self) -> str:
        return f"autoscaling of {self.domain}"


class DomainState(models.Model):
    """What the engine remembers of a domain between cycles (its BalloonWatch), and when it last grew it."""

    domain = models.OneToOneField(Domain, on_delete=models.CASCADE, primary_key=True, related_name="autoscale_state")
    requested_kib = models.BigIntegerField(default=0)
    last_gap_kib = models.BigIntegerField(default=0)
    behind_cycles = models.PositiveIntegerField(default=0)
    stuck_since = models.FloatField(null=True, blank=True)
    retries = models.PositiveIntegerField(default=0)
    retry_at = models.FloatField(null=True, blank=True)
    saturated_since = models.FloatField(null=True, blank=True)
    peak_kib = models.BigIntegerField(default=0)
    peak_at = models.FloatField(null=True, blank=True)
    last_grown_at = models.FloatField(null=True, blank=True)
    last_code = models.CharField(max_length=30, blank=True, default="")  # the last decision kept, to keep changes only

    WATCH_FIELDS = engine.BalloonWatch._fields

    def watch(self) -> engine.BalloonWatch:
        return engine.BalloonWatch(*(getattr(self, name) for name in self.WATCH_FIELDS))

    @property
    def stuck(self) -> bool:
        return self.stuck_since is not None


class HostState(models.Model):
    host = models.OneToOneField(Host, on_delete=models.CASCADE, primary_key=True, related_name="autoscale_state")
    squeezed_since = models.FloatField(null=True, blank=True)
    # Its engine.Coincidence: spikes of its domains that came together lately.
    coincident_kib = models.BigIntegerField(default=0)
    coincident_least_kib = models.BigIntegerField(default=0)
    coincident_at = models.FloatField(null=True, blank=True)
    last_codes = models.CharField(max_length=200, blank=True, default="")


class EngineState(models.Model):
    """One row: the policy revision (bumped by every policy change, part of the version the audit log shows) and
    the last run (claimed by compare-and-set, so that one run happens at a time)."""

    revision = models.PositiveIntegerField(default=0)
    last_run_at = models.FloatField(default=0.0)

    @classmethod
    def get(cls) -> "EngineState":
        return cls.objects.get_or_create(pk=1)[0]

    @property
    def policy_version(self) -> str:
        return f"{engine.ENGINE_VERSION}.{self.revision}"


class Decision(models.Model):
    """A step the engine planned (applied, recommended, deferred...) or a decision to do nothing, with its reason."""

    class Kind(models.TextChoices):
        STEP = "step", "step"
        NOTE = "note", "decision"

    class State(models.TextChoices):
        NOTED = "noted", "noted"  # a decision that is not a step
        RECOMMENDED = "recommended", "recommended"  # waits for a person to approve or dismiss it
        APPLIED = "applied", "applied"  # its job was created
        WAITING = "waiting", "waiting for shrinks"  # refused for room now; sent again when the shrinks end
        REFUSED = "refused", "refused"
        DISMISSED = "dismissed", "dismissed"
        SUPERSEDED = "superseded", "superseded"  # a later plan replaced it before anyone acted

    OPEN = (State.RECOMMENDED, State.WAITING)

    at = models.DateTimeField(db_index=True)  # set by the run, never on save
    kind = models.CharField(max_length=4, choices=Kind.choices)
    code = models.CharField(max_length=30)
    host = models.ForeignKey(Host, null=True, blank=True, on_delete=models.CASCADE, related_name="autoscale_decisions")
    domain = models.ForeignKey(Domain, null=True, blank=True, on_delete=models.CASCADE, related_name="autoscale_decisions")
    step_kind = models.CharField(max_length=10, blank=True, default="")  # resize, migrate
    from_kib = models.BigIntegerField(null=True, blank=True)
    to_kib = models.BigIntegerField(null=True, blank=True)
    to_host = models.ForeignKey(Host, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    reason = models.TextField()
    figures = models.JSONField(default=dict)
    mode = models.CharField(max_length=10, choices=Mode.choices)
    policy_version = models.CharField(max_length=30)
    state = models.CharField(max_length=12, choices=State.choices)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    error = models.TextField(blank=True, default="")
    error_code = models.CharField(max_length=30, blank=True, default="")  # the services' refusal code
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["domain", "-at"]),
            models.Index(fields=["host", "-at"]),
            models.Index(fields=["state", "host"]),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.domain or self.host} ({self.state})"

    # As a plan's Step says them (plan.Step.is_shrink, is_grow), for a step once it is kept.
    @property
    def is_shrink(self) -> bool:
        return self.step_kind == RESIZE and self.to_kib is not None and self.from_kib is not None and self.to_kib < self.from_kib

    @property
    def is_grow(self) -> bool:
        return self.step_kind == RESIZE and self.to_kib is not None and self.from_kib is not None and self.to_kib > self.from_kib

    @property
    def plan_order(self) -> tuple:
        """Where the step stands in a plan: shrinks, then migrations, then grows (each may need the room the ones
        before it free), then by when it was planned."""
        rank = 0 if self.is_shrink else 1 if self.step_kind != RESIZE else 2
        return rank, self.at, self.pk or 0
