"""Team and membership changes, for every entrance: the API and the team pages (balloonweb/access/views.py) call
these, so that each check and each refusal's audit entry is made in one place.

Creating and deleting teams is for superusers (a team has no admin before it exists); a team's admins change its
limits and its members. Each service judges who may first, then what was typed (so that someone refused learns
nothing about it). The audit entries of these changes are written by balloonweb.access.signals (whatever the path:
API, pages, Django's admin), as the current actor; refusals are audited here, as the services audit theirs.
"""

from django.contrib.auth import get_user_model
from django.db import transaction

from balloonweb.access import rules
from balloonweb.access.accounts import parse_role, parse_username, require_owner
from balloonweb.access.actors import Actor
from balloonweb.access.models import Membership, Team
from balloonweb.access.teams import limits_change_refusal, role_change_refusal
from domains.services import BadRequest, Conflict, Forbidden, NotFound, audit_refusals, check_permission

TEAM_NAME_MAX = Team._meta.get_field("name").max_length


def parse_team_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > TEAM_NAME_MAX:
        raise BadRequest(f"give the team a name of 1 to {TEAM_NAME_MAX} characters", "bad_name")
    return name


def create_team(actor: Actor, name: str, **limits) -> Team:
    require_owner(actor, "team.create", "creates teams")
    name = parse_team_name(name)
    with transaction.atomic():
        if Team.objects.filter(name=name).exists():
            raise Conflict(f"a team named {name} already exists", "name_taken")
        return Team.objects.create(name=name, **limits)


@audit_refusals("team.update")
def update_team(actor: Actor, team: Team, **changes) -> Team:
    with transaction.atomic():
        team = Team.objects.select_for_update().get(pk=team.pk)
        check_permission(actor, "manage_team", team)
        if refusal := limits_change_refusal(actor, team, changes):
            raise Forbidden(refusal)
        if "name" in changes and changes["name"] != team.name:
            if not actor.is_privileged:
                raise Forbidden("only a superuser renames teams")
            if Team.objects.filter(name=changes["name"]).exclude(pk=team.pk).exists():
                raise Conflict(f"a team named {changes['name']} already exists", "name_taken")
        for field, value in changes.items():
            setattr(team, field, value)
        team.save()
    return team


@audit_refusals("team.delete")
def delete_team(actor: Actor, team: Team) -> None:
    if not actor.is_privileged:
        check_permission(actor, "view", team)  # an outsider learns nothing, not even that only superusers may
        raise Forbidden("only a superuser deletes teams")
    with transaction.atomic():
        hosts = list(team.hosts.values_list("name", flat=True)[:5])
        if hosts:
            raise Conflict(f"team {team.name} still has hosts ({', '.join(hosts)}); move them to another team first", "team_has_hosts")
        team.delete()


@audit_refusals("membership.add")
def add_member(actor: Actor, team: Team, username: str, role: str) -> Membership:
    with transaction.atomic():
        check_permission(actor, "manage_team", team)
        role, username = parse_role(role), parse_username(username)
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise NotFound(f"no active user named {username}: a superuser creates accounts on the People page (/people/)")
        if Membership.objects.filter(team=team, user=user).exists():
            raise Conflict(f"{username} is already in team {team.name}; change their role instead", "already_member")
        return Membership.objects.create(team=team, user=user, role=role)


@audit_refusals("membership.role")
def change_role(actor: Actor, membership: Membership, role: str) -> Membership:
    with transaction.atomic():
        membership = Membership.objects.select_for_update(of=("self",)).select_related("team", "user").get(pk=membership.pk)
        check_permission(actor, "manage_team", membership.team)
        role = parse_role(role)
        if refusal := role_change_refusal(membership, role):
            raise Conflict(refusal, "last_admin")
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


@audit_refusals("membership.remove")
def remove_member(actor: Actor, membership: Membership) -> None:
    with transaction.atomic():
        membership = Membership.objects.select_for_update(of=("self",)).select_related("team", "user").get(pk=membership.pk)
        check_permission(actor, "manage_team", membership.team)
        if refusal := role_change_refusal(membership, None):
            raise Conflict(refusal, "last_admin")
        membership.delete()


def visible_memberships(actor: Actor):
    """Members of the teams the actor sees."""
    return Membership.objects.filter(team__in=rules.restrict(Team.objects.all(), actor, "view"))
