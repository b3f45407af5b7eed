"""People's accounts, for every entrance (the users page and the API): a superuser creates them, gives a new
password, signs a person out everywhere, and deactivates or reactivates them. Until this, accounts were made in Django's admin site only.

A password a superuser does not type is generated and shown once, to be handed over; it is not stored in
clear anywhere. The entries of these changes (user.create, user.update, auth.password_change,
membership.add) are written by access.signals, whatever the path, as the current actor; refusals of people
are audited here. A deactivated account, or one given a new password, is signed out everywhere: its sessions
end and its open pages are closed (its API tokens stop working with the account).
"""

import secrets

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from balloonweb.api.tokens import revoke_all_of
from balloonweb.audit.log import record
from balloonweb.audit.models import AuditEntry
from domains.host_registry import find_team
from domains.services import BadRequest, Conflict, Forbidden

from .actors import Actor
from .models import Membership
from .sessions import end_all_sessions

User = get_user_model()
USERNAME_MAX = User._meta.get_field("username").max_length
EMAIL_MAX = User._meta.get_field("email").max_length


def require_owner(actor: Actor, action: str, what: str, user=None) -> None:
    """Only a superuser (the fleet's owner) may; anyone else is refused, and the refusal audited as `action`
    (for every entrance: pages, API). Also the check of creating teams (balloonweb/api/teams.py)."""
    if not actor.is_privileged:
        refusal = Forbidden(f"only a superuser {what}")
        record(actor, action, None, result=AuditEntry.Result.REFUSED, message=refusal.message,
               after={"user": user.get_username()} if user is not None else None)
        raise refusal


def parse_username(username: str) -> str:
    name = (username or "").strip()
    try:
        if not name or len(name) > USERNAME_MAX:
            raise ValidationError("empty or too long")
        UnicodeUsernameValidator()(name)
    except ValidationError:
        raise BadRequest(
            f"{name[:40]!r} is not a user name: use 1 to {USERNAME_MAX} letters, digits and @ . + - _", "bad_username",
        ) from None
    return name


def parse_email(email: str) -> str:
    email = (email or "").strip()
    if not email:
        return ""
    try:
        if len(email) > EMAIL_MAX:
            raise ValidationError("too long")
        validate_email(email)
    except ValidationError:
        raise BadRequest(f"{email[:60]!r} is not an e-mail address (leave it empty for none)", "bad_email") from None
    return email


def parse_role(role: str) -> str:
    """A role in a team, as typed (the people page, the team page, the API)."""
    if role not in Membership.Role.values:
        raise BadRequest(f"{role!r} is not a role: use viewer, operator or admin", "bad_role")
    return role


def _password_for(user, typed: str) -> tuple[str, bool]:
    """(the password, whether it was generated). A typed one must pass the site's password rules."""
    if not typed:
        return secrets.token_urlsafe(12), True
    try:
        password_validation.validate_password(typed, user)
    except ValidationError as exc:
        raise BadRequest("the password is refused: " + " ".join(exc.messages), "bad_password") from None
    return typed, False


def create_account(actor: Actor, username: str, *, email: str = "", password: str = "", team: str | int | None = None,
                   role: str = Membership.Role.VIEWER) -> tuple:
    """A new active account, in `team` (a name or an id) with `role` if one is given. Returns (user, the password
    if it was generated, else None)."""
    require_owner(actor, "user.create", "creates accounts")
    name, email, team = parse_username(username), parse_email(email), find_team(team)
    if team is not None:
        parse_role(role)
    # Usernames differ only in case would be two people to Django and one to a colleague reading the audit log.
    taken = Conflict(f"an account named {name} already exists", "name_taken")
    if User.objects.filter(username__iexact=name).exists():
        raise taken
    user = User(username=name, email=email)
    password, generated = _password_for(user, password)
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
            if team is not None:
                Membership.objects.create(user=user, team=team, role=role)
    except IntegrityError:
        raise taken from None  # created by someone else since the check above
    return user, password if generated else None


def set_active(actor: Actor, user, active: bool) -> None:
    """Deactivate (the person can no longer sign in or use a token; their history stays) or reactivate."""
    require_owner(actor, "user.update", "deactivates or reactivates accounts", user)
    if not active and actor.user is not None and actor.user.pk == user.pk:
        raise BadRequest("you cannot deactivate your own account; another superuser can", "own_account")
    with transaction.atomic():
        # The active superusers locked together: two of them deactivating each other at once leave one.
        superusers = set(User.objects.select_for_update().filter(is_superuser=True, is_active=True).values_list("pk", flat=True))
        user = User.objects.select_for_update().get(pk=user.pk)
        if not active and superusers == {user.pk}:
            raise Conflict(f"{user.get_username()} is the last active superuser: no one could manage accounts then", "last_superuser")
        if user.is_active == active:
            return
        user.is_active = active
        user.save(update_fields=["is_active"])
        if not active:
            end_all_sessions(user)
            # Refused while the account is inactive, they would all work again once it is reactivated.
            revoke_all_of(actor, user, "the account was deactivated")


def sign_out_everywhere(actor: Actor, user) -> int:
    """End every session of `user` and close their open pages (a lost laptop); returns how many sessions."""
    require_owner(actor, "auth.logout_everywhere", "signs another person out", user)
    return end_all_sessions(user)


def new_password(actor: Actor, user, typed: str = "") -> str | None:
    """Give `user` a new password (typed, or generated and returned to be handed over), sign them out everywhere
    and revoke their API tokens, so that whoever knew the old one is out."""
    require_owner(actor, "auth.password_change", "gives another person a new password", user)
    if actor.user is not None and actor.user.pk == user.pk:
        raise BadRequest("change your own password on the password page (/password/), with your current one", "own_account")
    password, generated = _password_for(user, typed)
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        user.set_password(password)
        user.save(update_fields=["password"])
        end_all_sessions(user)
        # A token needs no password: one made by whoever knew the old password would outlive it.
        revoke_all_of(actor, user, "the account was given a new password")
    return password if generated else None

