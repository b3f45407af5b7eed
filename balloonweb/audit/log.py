"""The one function that writes the audit log. Call it inside the transaction of the change it records."""

import ipaddress
import json

from django.db import transaction
from django.utils import timezone

from balloonweb.access.actors import Actor

from . import chain
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
    team_id: int | None = None,
) -> AuditEntry:
    """Append one entry to the chain. `team_id` places an entry without an object (or with one outside the
    team tree) in a team, so that the team's admins see it."""
    host, domain, scope_team_id = _scope(obj)
    user = actor.user if actor.user is not None and actor.user.is_authenticated else None
    entry = AuditEntry(
        actor_kind=actor.kind,
        actor_label=actor.label[:150],
        actor_user_id=user.pk if user else None,
        action=action,
        object_type=obj._meta.model_name if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        object_repr=str(obj)[:200] if obj is not None else "",
        team_id=team_id if team_id is not None else scope_team_id,
        host_id=host.pk if host else None,
        domain_id=domain.pk if domain else None,
        # Signed as they will read back from the database: plain JSON, no tuples or dates.
        before=_plain(before),
        after=_plain(after),
        result=result,
        message=message,
        job_id=job.pk if job is not None else None,
        request_id=str(actor.context.get("request_id", ""))[:64],
        client_ip=_ip(actor.context.get("client_ip")),
    )
    with transaction.atomic():
        chain.lock()
        last = AuditEntry.objects.order_by("-id").only("id", "mac", "action", "after", "at").first()
        entry.id = last.id + 1 if last else 1
        # Taken under the lock, and never before the last entry's (workers on machines whose clocks differ a
        # little): time never goes backwards along the chain, which the period filters count on.
        entry.at = max(timezone.now(), last.at) if last else timezone.now()
        entry.mac = chain.mac(entry, chain.next_link(last))
        entry.save()
    return entry


def record_in_teams(actor: Actor, action: str, obj, team_ids: list[int | None], **details) -> None:
    """One entry per team among `team_ids` (a migration across teams concerns the admins of both, and the object's
    own scope moves with it mid-way); the object's scope alone when none is a team."""
    teams = list(dict.fromkeys(team for team in team_ids if team is not None))
    for team_id in teams or [None]:
        record(actor, action, obj, team_id=team_id, **details)


def _plain(value):
    return None if value is None else json.loads(json.dumps(value, default=str))


def _ip(value) -> str | None:
    """The address as the database gives it back (an IPv4-mapped IPv6 address as IPv4)."""
    if not value:
        return None
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return str(address)


def _scope(obj):
    """(host, domain, team id) that an object belongs to, so that entries can be filtered by each."""
    model = obj._meta.model_name if obj is not None else ""
    if model == "domain":
        return obj.host, obj, obj.host.team_id
    if model == "host":
        return obj, None, obj.team_id
    if model in ("job", "decision"):  # a decision: an autoscaler step, on its host (and domain)
        return obj.host, obj.domain, obj.host.team_id
    if model == "team":
        return None, None, obj.pk
    if model == "membership":
        return None, None, obj.team_id
    return None, None, None
