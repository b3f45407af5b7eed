"""`{% load audit %}{% audit_history domain %}` (or a host): the object's recent audit entries, for the domain
and host pages. The page has already checked that the user may view the object, and every member of its team
sees who did what to it; only those who review the team's audit log see where each request came from (the
client's address), and only superusers the entries of a team the object belonged to before."""

from django import template

from balloonweb.access import rules
from balloonweb.audit.models import AuditEntry
from balloonweb.audit.review import may_review
from hosts.units import format_mib

register = template.Library()
HISTORY_LENGTH = 15


@register.inclusion_tag("audit/_history.html", takes_context=True)
def audit_history(context, obj, length: int = HISTORY_LENGTH):
    field = {"domain": "domain_id", "host": "host_id"}[obj._meta.model_name]
    team_id = obj.team_id if field == "host_id" else obj.host.team_id
    request = context.get("request")
    actor = getattr(request, "actor", None)
    entries = AuditEntry.objects.filter(**{field: obj.pk})
    if actor is None or not actor.is_privileged:
        entries = entries.filter(team_id=team_id)
    return {
        "entries": list(entries.order_by("-id")[:length]),
        "review_query": f"{field.removesuffix('_id')}={obj.pk}",
        "may_review": actor is not None and may_review(actor),
        "hide_origin": actor is None or not rules.allows(actor, "view_audit", team_id),
    }


@register.filter
def get_item(mapping, key):
    return mapping.get(key) if mapping else None


@register.filter
def pretty_change(values: dict) -> str:
    """{"memory_kib": 524288, "team_id": None} -> "memory 512 MiB, team none": sizes in the unit the pages use,
    field names and values as a person reads them rather than as Python prints them."""
    parts = []
    for name, value in (values or {}).items():
        label = name.removesuffix("_kib").removesuffix("_id").replace("_", " ")
        if name.endswith("_kib") and isinstance(value, int):
            parts.append(f"{label} {format_mib(value)}")
        else:
            parts.append(f"{label} {_readable(value)}")
    return ", ".join(parts)


def _readable(value) -> str:
    if value is None or value == "":
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


@register.filter(name="may_review")
def may_review_filter(request) -> bool:
    """`{% if request|may_review %}`: whether to offer the audit page (team admins and superusers)."""
    actor = getattr(request, "actor", None)
    return actor is not None and getattr(request.user, "is_authenticated", False) and may_review(actor)
