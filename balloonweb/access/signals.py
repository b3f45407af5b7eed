"""Audit entries and socket closing for what happens outside the services: sign-in and sign-out, failed
sign-ins, and changes to teams, memberships and hosts from any path (our pages, Django's admin, the API,
`simhost`). Model signals run inside the saving transaction, so each entry commits with its change."""

from django.contrib.auth import signals as auth_signals
from django.db.models import signals
from django.dispatch import receiver

from balloonweb.audit.log import record, record_in_teams
from balloonweb.audit.models import AuditEntry

from . import actors, ratelimit, sockets
from .models import Membership, Team, UserSession

Result = AuditEntry.Result


# -- signing in and out ---------------------------------------------------------------------------------------


@receiver(auth_signals.user_logged_in)
def signed_in(sender, request, user, **kwargs):
    actor = actors.Actor.from_request(request, user=user) if request is not None else actors.Actor.for_user(user)
    key = None
    if request is not None and hasattr(request, "session"):
        if request.session.session_key is None:
            request.session.save()  # login() flushed a previous user's session: the new one has no key yet
        key = request.session.session_key
    if key:
        UserSession.objects.update_or_create(session_key=key, defaults={"user": user, "client_ip": actor.context.get("client_ip")})
    record(actor, "auth.login", result=Result.SUCCEEDED)


@receiver(auth_signals.user_logged_out)
def signed_out(sender, request, user, **kwargs):
    if user is None:
        return  # an anonymous visitor pressed "sign out"
    actor = actors.Actor.from_request(request, user=user) if request is not None else actors.Actor.for_user(user)
    key = request.session.session_key if request is not None and hasattr(request, "session") else None
    if key:
        UserSession.objects.filter(session_key=key).delete()
    record(actor, "auth.logout", result=Result.SUCCEEDED)
    # The session is flushed right after this signal; the sockets check it when the hint arrives.
    sockets.access_changed(user.pk, reason="signed out", sessions=[key] if key else [])


@receiver(auth_signals.user_login_failed)
def sign_in_failed(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username", ""))[:150]
    ip = ratelimit.request_ip(request)
    limited = bool(getattr(request, "login_rate_limited", False))
    context = {"request_id": getattr(request, "request_id", ""), "client_ip": ip}
    record(
        actors.Actor("user", username or "(no name)", None, context),
        "auth.login_failed",
        result=Result.REFUSED if limited else Result.FAILED,
        message="too many failed sign-ins: refused without checking the password" if limited else "wrong user name or password",
    )


# -- teams, memberships, hosts --------------------------------------------------------------------------------

TEAM_FIELDS = ("name", "operator_max_kib", "quota_kib")
HOST_FIELDS = ("name", "uri", "team_id", "capacity_kib", "reserved_kib", "queue_group")


def _values(obj, fields) -> dict:
    return {f: getattr(obj, f) for f in fields}


def _remember(sender, instance, fields):
    """Before a save, the row as stored, so that the entry can say what changed."""
    old = sender.objects.filter(pk=instance.pk).values(*fields).first() if instance.pk else None
    instance._audit_before = old


def _changes(instance, fields):
    before = getattr(instance, "_audit_before", None) or {}
    after = _values(instance, fields)
    changed = [f for f in fields if before.get(f) != after[f]]
    return {f: before.get(f) for f in changed}, {f: after[f] for f in changed}


@receiver(signals.pre_save, sender=Team)
def team_saving(sender, instance, **kwargs):
    _remember(sender, instance, TEAM_FIELDS)


@receiver(signals.post_save, sender=Team)
def team_saved(sender, instance, created, **kwargs):
    if created:
        record(actors.current(), "team.create", instance, result=Result.SUCCEEDED, after=_values(instance, TEAM_FIELDS))
        return
    before, after = _changes(instance, TEAM_FIELDS)
    if after:
        record(actors.current(), "team.update", instance, result=Result.SUCCEEDED, before=before, after=after)


@receiver(signals.post_delete, sender=Team)
def team_deleted(sender, instance, **kwargs):
    record(actors.current(), "team.delete", instance, result=Result.SUCCEEDED,
           before=_values(instance, TEAM_FIELDS), message=f"team {instance.name} deleted")


@receiver(signals.pre_save, sender=Membership)
def membership_saving(sender, instance, **kwargs):
    _remember(sender, instance, ("role", "user_id", "team_id"))


@receiver(signals.post_save, sender=Membership)
def membership_saved(sender, instance, created, **kwargs):
    who = {"user": instance.user.get_username(), "team": instance.team_id}
    if created:
        record(actors.current(), "membership.add", None, team_id=instance.team_id, result=Result.SUCCEEDED,
               after={**who, "role": instance.role}, message=f"{who['user']} joined as {instance.role}")
        sockets.team_joined(instance.user_id, instance.team_id)
        return
    before = getattr(instance, "_audit_before", None) or {}
    if (before.get("user_id"), before.get("team_id")) != (instance.user_id, instance.team_id):
        # Edited in place to another person or team (Django admin's inline): one left, another joined.
        old_user = type(instance.user).objects.filter(pk=before.get("user_id")).first()
        old_name = old_user.get_username() if old_user else f"user {before.get('user_id')}"
        record(actors.current(), "membership.remove", None, team_id=before.get("team_id"), result=Result.SUCCEEDED,
               before={"user": old_name, "team": before.get("team_id"), "role": before.get("role")},
               message=f"{old_name} left team {before.get('team_id')}")
        sockets.access_changed(before.get("user_id"), reason="removed from team", team=before.get("team_id"))
        record(actors.current(), "membership.add", None, team_id=instance.team_id, result=Result.SUCCEEDED,
               after={**who, "role": instance.role}, message=f"{who['user']} joined as {instance.role}")
        sockets.team_joined(instance.user_id, instance.team_id)
        return
    if before.get("role") != instance.role:
        record(actors.current(), "membership.role", None, team_id=instance.team_id, result=Result.SUCCEEDED,
               before={**who, "role": before.get("role")}, after={**who, "role": instance.role},
               message=f"{who['user']}: {before.get('role')} -> {instance.role}")
        sockets.access_changed(instance.user_id, reason="role changed", team=instance.team_id)


@receiver(signals.post_delete, sender=Membership)
def membership_deleted(sender, instance, **kwargs):
    # By name, as membership.add: an id says nothing once the account is gone (the user row is still there now).
    name = instance.user.get_username()
    record(actors.current(), "membership.remove", None, team_id=instance.team_id, result=Result.SUCCEEDED,
           before={"user": name, "team": instance.team_id, "role": instance.role},
           message=f"{name} left team {instance.team_id}")
    sockets.access_changed(instance.user_id, reason="removed from team", team=instance.team_id)


def host_saving(sender, instance, **kwargs):
    _remember(sender, instance, HOST_FIELDS)


def host_saved(sender, instance, created, **kwargs):
    if created:
        record(actors.current(), "host.add", instance, result=Result.SUCCEEDED, after=_values(instance, HOST_FIELDS))
        sockets.host_changed_team(instance.pk, None, instance.team_id)
        return
    # Status, stats and last_seen change every poll; only what an admin sets is recorded.
    before, after = _changes(instance, HOST_FIELDS)
    if after:
        # A host given to another team: the team that loses it sees that too (the host's scope is the new team).
        teams = [instance.team_id, before.get("team_id")] if "team_id" in after else [instance.team_id]
        record_in_teams(actors.current(), "host.update", instance, teams, result=Result.SUCCEEDED, before=before, after=after)
    if "team_id" in after:
        sockets.host_changed_team(instance.pk, before["team_id"], after["team_id"])


def host_deleted(sender, instance, **kwargs):
    # post_delete comes before Django clears the pk: the entry still names the host's id.
    record(actors.current(), "host.remove", instance, result=Result.SUCCEEDED,
           before=_values(instance, HOST_FIELDS), message=f"host {instance.name} removed")


# By label, since hosts sits above access (hosts imports access.models, never the reverse).
signals.pre_save.connect(host_saving, sender="hosts.Host", dispatch_uid="audit-host-pre")
signals.post_save.connect(host_saved, sender="hosts.Host", dispatch_uid="audit-host-post")
signals.post_delete.connect(host_deleted, sender="hosts.Host", dispatch_uid="audit-host-delete")


# -- users: superuser and staff flags, deactivation, password changes ---------------------------------------------

USER_FIELDS = ("is_superuser", "is_staff", "is_active")


def user_saving(sender, instance, **kwargs):
    _remember(sender, instance, (*USER_FIELDS, "password"))


def user_saved(sender, instance, created, **kwargs):
    name = {"user": instance.get_username()}
    if created:
        record(actors.current(), "user.create", None, result=Result.SUCCEEDED, after={**name, **_values(instance, USER_FIELDS)})
        return
    before, after = _changes(instance, USER_FIELDS)
    if after:
        # Granting superuser is the largest role change there is; losing "active" ends what the user has open.
        record(actors.current(), "user.update", None, result=Result.SUCCEEDED, before={**name, **before}, after={**name, **after})
        if after.get("is_active") is False or after.get("is_superuser") is False:
            sockets.access_changed(instance.pk, reason="account changed")
        elif after.get("is_superuser") is True:  # sees every host now: its open pages join their groups
            sockets.rights_grew(instance.pk)
    old_password = (getattr(instance, "_audit_before", None) or {}).get("password")
    if old_password is not None and old_password != instance.password:
        # Never the hashes: only that it changed, and by whom.
        record(actors.current(), "auth.password_change", None, result=Result.SUCCEEDED, after=name)
        # The other sessions are signed out over HTTP; their open sockets are checked again on reconnect.
        sockets.access_changed(instance.pk, reason="password changed")


def user_deleted(sender, instance, **kwargs):
    record(actors.current(), "user.delete", None, result=Result.SUCCEEDED, before={"user": instance.get_username()})


def _connect_user_signals():
    from django.conf import settings

    model = settings.AUTH_USER_MODEL
    signals.pre_save.connect(user_saving, sender=model, dispatch_uid="audit-user-pre")
    signals.post_save.connect(user_saved, sender=model, dispatch_uid="audit-user-post")
    signals.post_delete.connect(user_deleted, sender=model, dispatch_uid="audit-user-delete")


_connect_user_signals()
