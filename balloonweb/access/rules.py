"""Who may do what: the one place for permissions. Every entrance (page, API, command line, WebSocket,
autoscaler) asks `require()` for one object and `restrict()` for a queryset.

Outsiders get NotFound (the object's existence is not revealed); members without the right get Forbidden.
"""

from django.db.models import Model, Q, QuerySet

from .actors import Actor
from .models import Membership

Role = Membership.Role

ACTIONS_BY_ROLE: dict[str, frozenset[str]] = {
    Role.VIEWER: frozenset({"view"}),
    Role.OPERATOR: frozenset({"view", "resize", "migrate", "cancel_job"}),
    Role.ADMIN: frozenset(
        {"view", "resize", "migrate", "cancel_job", "set_maxmem", "set_floor", "create", "power", "manage_host",
         "manage_team", "view_audit"}
    ),
}
ACTIONS = frozenset().union(*ACTIONS_BY_ROLE.values())


class NotFound(Exception):
    """The actor may not even see the object."""


class Forbidden(Exception):
    """The actor sees the object but may not do this to it."""


def team_id_of(obj: Model) -> int | None:
    model = obj._meta.model_name
    if model == "team":
        return obj.pk
    if model == "host":
        return obj.team_id
    if model == "domain":
        return obj.host.team_id
    if model == "job":
        return obj.host.team_id
    raise TypeError(f"no team rule for {model}")


def team_ids_of(obj: Model) -> set[int | None]:
    """The teams whose members see `obj` (by their role there; None: no team, superusers only): its team, and for
    a migration also the team of its destination, whose host it fills (who moves a domain across teams is a
    member of both, or a superuser)."""
    teams = {team_id_of(obj)}
    if obj._meta.model_name == "job" and obj.target_host_id is not None and obj.target_host_id != obj.host_id:
        teams.add(obj.target_host.team_id)
    return teams


def roles_of(actor: Actor) -> dict[int, str]:
    """{team id: role} for a person (or a person's token); the autoscaler operates the teams whose policies it
    applies; empty for everyone else."""
    if actor.kind == "autoscaler":
        return dict.fromkeys(actor.context.get("team_ids", ()), Role.OPERATOR)
    if actor.user is None or not actor.user.is_authenticated:
        return {}
    cache = actor.context.setdefault("_roles", None)
    if cache is None:
        cache = dict(Membership.objects.filter(user=actor.user).values_list("team_id", "role"))
        actor.context["_roles"] = cache
    return cache


def allows(actor: Actor, action: str, team_id: int | None) -> bool:
    if actor.is_privileged:
        return True
    role = roles_of(actor).get(team_id) if team_id is not None else None
    return role is not None and action in ACTIONS_BY_ROLE[role]


def require(actor: Actor, action: str, obj: Model) -> None:
    """Raise NotFound for outsiders and Forbidden for members without the right."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    if actor.is_privileged:
        return
    teams = team_ids_of(obj) & set(roles_of(actor))
    if not teams:
        raise NotFound(f"no such {obj._meta.verbose_name}")
    if not any(allows(actor, action, team_id) for team_id in teams):
        raise Forbidden(f"your role in this team does not allow '{action}' on {obj}")


def allowed_actions(actor: Actor, obj: Model) -> set[str]:
    """What `actor` may do to `obj`, for pages that show a control disabled rather than let it fail: the
    template asks `"resize" in allowed`. Empty for outsiders."""
    if actor.is_privileged:
        return set(ACTIONS)
    roles = roles_of(actor)
    return {action for team_id in team_ids_of(obj) if team_id in roles for action in ACTIONS_BY_ROLE[roles[team_id]]}


def team_ids_allowing(actor: Actor, action: str) -> list[int]:
    return [team for team, role in roles_of(actor).items() if action in ACTIONS_BY_ROLE[role]]


def restrict(queryset: QuerySet, actor: Actor, action: str = "view") -> QuerySet:
    """The objects of `queryset` on which `actor` may do `action`."""
    if actor.is_privileged:
        return queryset
    model = queryset.model._meta.model_name
    teams = team_ids_allowing(actor, action)
    if model == "job":  # its host's team, or its destination's (team_ids_of)
        return queryset.filter(Q(host__team__in=teams) | Q(target_host__team__in=teams))
    team_path = {"team": "pk", "host": "team", "domain": "host__team"}[model]
    return queryset.filter(**{f"{team_path}__in": teams})
