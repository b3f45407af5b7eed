from django.conf import settings
from django.db import models


class AuditEntry(models.Model):
    """One recorded action. Written once, never changed (see audit.record)."""

    class Result(models.TextChoices):
        ACCEPTED = "accepted", "accepted"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        REFUSED = "refused", "refused"

    at = models.DateTimeField(db_index=True)
    actor_kind = models.CharField(max_length=12)
    actor_label = models.CharField(max_length=150)
    actor_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=40, db_index=True)
    object_type = models.CharField(max_length=20, blank=True, default="")
    object_id = models.CharField(max_length=64, blank=True, default="")
    object_repr = models.CharField(max_length=200, blank=True, default="")
    team_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    host_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    domain_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    result = models.CharField(max_length=10, choices=Result.choices)
    message = models.TextField(blank=True, default="")
    job_id = models.BigIntegerField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True, default="")
    client_ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.object_repr} {self.result}"
