"""The one function that writes the audit log. Call it inside the transaction of the change it records."""

from django.utils import timezone

from balloonweb.access.actors import Actor

from .models import AuditEntry


def record(
    actor: Actor,
    action: str,
    obj=None,
    *,
    result: str = AuditEntry.Result.ACCEPTED,
    before: dict | None = None,
    after: dict | None = None,
    message: str = "",
    job=None,
) -> AuditEntry:
    host, domain, team_id = _scope(obj)
    return AuditEntry.objects.create(
        at=timezone.now(),
        actor_kind=actor.kind,
        actor_label=actor.label,
        actor_user=actor.user,
        action=action,
        object_type=obj._meta.model_name if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        object_repr=str(obj)[:200] if obj is not None else "",
        team_id=team_id,
        host_id=host.pk if host else None,
        domain_id=domain.pk if domain else None,
        before=before,
        after=after,
        result=result,
        message=message,
        job_id=job.pk if job is not None else None,
        request_id=actor.context.get("request_id", ""),
        client_ip=actor.context.get("client_ip"),
    )


def _scope(obj):
    """(host, domain, team id) that an object belongs to, so that entries can be filtered by each."""
    model = obj._meta.model_name if obj is not None else ""
    if model == "domain":
        return obj.host, obj, obj.host.team_id
    if model == "host":
        return obj, None, obj.team_id
    if model == "team":
        return None, None, obj.pk
    return None, None, None
