"""Closing a user's open WebSockets when their access changes (a role changed or lost, a sign-out).

Every consumer joins its user's group "user.<id>" besides the groups of what it watches (domains/consumers.py,
LiveConsumer). On a role change, a removed membership or a sign-out, `access_changed()` publishes a "close"
there; the consumer closes, and the page's reconnect goes through the same permission check as a first
connect, so it comes back only where the user still may look. The payload says which team or sessions the
change was about, for a consumer that wants to close less. A new membership closes nothing: `team_joined()`
publishes a "regroup" there, and the fleet and jobs sockets join the new team's groups and tell their page to
refetch (the page shows the team's hosts without a reload).
"""

from balloonweb.live.publish import group_name, publish

TOPIC = "user"


def user_group(user_id: int) -> str:
    return group_name(TOPIC, user_id)


def access_changed(user_id: int, reason: str, *, team: int | None = None, sessions: list[str] | None = None) -> None:
    """Close the user's open sockets (after the current transaction commits)."""
    payload = {"type": "close", "reason": reason}
    if team is not None:
        payload["team"] = team
    if sessions:
        payload["sessions"] = sessions
    publish(TOPIC, user_id, payload)


def team_joined(user_id: int, team: int) -> None:
    """Let the user's open sockets join the groups of a team they now see (after the transaction commits)."""
    publish(TOPIC, user_id, {"type": "regroup", "team": team})


def rights_grew(user_id: int) -> None:
    """Have the user's open sockets reconnect, to join every group they may now see (made superuser): a socket's
    user was read once, at connect, so a regroup there would still see the rights from before."""
    access_changed(user_id, reason="account changed")


def host_changed_team(host_id: int, old_team: int | None, new_team: int | None) -> None:
    """A host added, or given to another team. The old team's members may no longer watch it: their sockets
    close, and reconnect through the permission check. The new team's members and the superusers (who see every
    host) join the new team's groups, which they had not if it had no host before."""
    from django.contrib.auth import get_user_model

    from .models import Membership

    if old_team is not None:
        for user_id in Membership.objects.filter(team_id=old_team).values_list("user_id", flat=True):
            access_changed(user_id, f"host {host_id} left the team", team=old_team)
    joining = set(Membership.objects.filter(team_id=new_team).values_list("user_id", flat=True)) if new_team is not None else set()
    joining |= set(get_user_model().objects.filter(is_superuser=True, is_active=True).values_list("pk", flat=True))
    for user_id in sorted(joining):
        team_joined(user_id, new_team)
