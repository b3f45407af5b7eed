from django.conf import settings
from django.db import models


class AppendOnly(Exception):
    """An audit entry was about to be changed or deleted: the log only grows (see docs/audit.md)."""


class AuditQuerySet(models.QuerySet):
    # Bulk paths skip Model.save()/delete(), so they are closed here too. Archiving (the one sanctioned
    # removal) deletes with SQL of its own, under the chain lock, after writing a signed checkpoint.
    def update(self, **kwargs):
        raise AppendOnly("audit entries cannot be updated")

    def delete(self):
        raise AppendOnly("audit entries cannot be deleted (use `manage.py audit archive`)")


class AuditEntry(models.Model):
    """One recorded action. Written once by audit.log.record(), never changed: each entry's MAC covers its own
    content and the previous entry's MAC, so a changed, removed or inserted row breaks the chain."""

    class Result(models.TextChoices):
        ACCEPTED = "accepted", "accepted"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        REFUSED = "refused", "refused"

    # The id is given by record() under the chain lock (previous id + 1), so it is part of the signed content.
    id = models.BigIntegerField(primary_key=True)
    at = models.DateTimeField()
    actor_kind = models.CharField(max_length=12)
    actor_label = models.CharField(max_length=150)
    # A plain reference, not a constraint: deleting a user must neither rewrite nor block the history.
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    action = models.CharField(max_length=40)
    object_type = models.CharField(max_length=20, blank=True, default="")
    object_id = models.CharField(max_length=64, blank=True, default="")
    object_repr = models.CharField(max_length=200, blank=True, default="")
    team_id = models.BigIntegerField(null=True, blank=True)
    host_id = models.BigIntegerField(null=True, blank=True)
    domain_id = models.BigIntegerField(null=True, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    result = models.CharField(max_length=10, choices=Result.choices)
    message = models.TextField(blank=True, default="")
    job_id = models.BigIntegerField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True, default="")
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    mac = models.CharField("HMAC-SHA256 of this entry and the previous one's MAC", max_length=64)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "audit entries"
        # The review page reads newest first, `id < cursor` (keyset) with at most one or two equality filters:
        # each filter column leads an index that ends in id, so a page is one backward index range scan.
        indexes = [
            models.Index(fields=["team_id", "id"], name="audit_team_id"),
            models.Index(fields=["host_id", "id"], name="audit_host_id"),
            models.Index(fields=["domain_id", "id"], name="audit_domain_id"),
            models.Index(fields=["action", "id"], name="audit_action_id"),
            models.Index(fields=["result", "id"], name="audit_result_id"),
            models.Index(fields=["actor_label", "id"], name="audit_actor_id"),
            models.Index(fields=["actor_kind", "id"], name="audit_actor_kind_id"),
            models.Index(fields=["job_id", "id"], name="audit_job_id"),
            models.Index(fields=["at"], name="audit_at"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.object_repr} {self.result}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnly(f"audit entry {self.pk} cannot be changed")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnly(f"audit entry {self.pk} cannot be deleted (use `manage.py audit archive`)")
