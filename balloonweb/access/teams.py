"""The rules for changing teams that are not a role check, in one place for the pages (access/views.py) and the
API (api/teams.py). Each returns the refusal as a sentence, or None; the caller raises its own error type."""

from .actors import Actor
from .models import Membership, Team

LIMIT_FIELDS = ("operator_max_kib", "quota_kib")


def role_change_refusal(membership: Membership, new_role: str | None) -> str | None:
    """A team keeps at least one admin (new_role None: the member is removed), or only a superuser could
    manage it again."""
    if membership.role != Membership.Role.ADMIN or new_role == Membership.Role.ADMIN:
        return None
    others = Membership.objects.filter(team_id=membership.team_id, role=Membership.Role.ADMIN).exclude(pk=membership.pk)
    if others.exists():
        return None
    return f"{membership.user} is the last admin of {membership.team}: make someone else admin first"


def may_set_quota(actor: Actor) -> bool:
    """The quota is what the fleet's owner grants a team; its admins delegate within it (operator_max_kib).
    So a team admin may set the operator limit but not the quota (see services.check_delegation)."""
    return actor.is_privileged


def limits_change_refusal(actor: Actor, team: Team, changes: dict) -> str | None:
    if "quota_kib" in changes and changes["quota_kib"] != team.quota_kib and not may_set_quota(actor):
        return f"only a superuser changes the quota of team {team.name}"
    return None
