"""Creating, revoking and checking API tokens. Every change and the use of a token are audited."""

import hashlib
import secrets
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from balloonweb.access.actors import Actor
from balloonweb.audit.log import record
from balloonweb.audit.models import AuditEntry

from .models import ApiToken

TOKEN_START = "bw_"
# Use is audited once per token per interval and client address, not per request: a monitoring script polling
# every few seconds would otherwise bury every other entry.
USE_AUDIT_INTERVAL = timedelta(hours=1)


MAX_EXPIRY_DAYS = 3650


class TokenError(Exception):
    pass


def expiry(days: int | None):
    """When a token given for `days` days expires (None: never); days from 1 to MAX_EXPIRY_DAYS."""
    if days is None:
        return None
    if not 1 <= days <= MAX_EXPIRY_DAYS:
        raise TokenError(f"the expiry is a number of days from 1 to {MAX_EXPIRY_DAYS}, or none")
    return timezone.now() + timedelta(days=days)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split(text: str) -> tuple[str, str] | None:
    """'bw_<prefix>_<secret>' -> (prefix, secret); None when it is not shaped like a token."""
    if not text.startswith(TOKEN_START):
        return None
    prefix, _, secret = text[len(TOKEN_START):].partition("_")
    if not prefix or not secret or len(prefix) > 16:
        return None
    return prefix, secret


def create_token(actor: Actor, user, name: str, *, write: bool = False, expires=None) -> tuple[ApiToken, str]:
    """A new token for `user`; returns the row and the full token text, which is never stored nor shown again."""
    name = (name or "").strip()
    if not name:
        raise TokenError("a token needs a name (what it is for, e.g. 'monitoring')")
    if expires is not None and expires <= timezone.now():
        raise TokenError("the expiry must be in the future")
    for _ in range(5):
        prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        try:
            with transaction.atomic():
                token = ApiToken.objects.create(
                    user=user, name=name[:100], prefix=prefix, secret_sha256=digest(secret), write=write, expires=expires
                )
                record(actor, "token.create", token, result=AuditEntry.Result.SUCCEEDED,
                       after={"user": user.get_username(), "name": token.name, "scope": token.scope,
                              "expires": expires.isoformat() if expires else None})
        except IntegrityError:
            continue  # a prefix collision (48 random bits): draw again
        return token, f"{TOKEN_START}{prefix}_{secret}"
    raise TokenError("could not draw a unique token prefix; try again")


def revoke_all_of(actor: Actor, user, why: str) -> int:
    """Revoke every live token of `user` (a password reset, a deactivation: whoever had the account may have
    made one); each revocation is audited. Returns how many."""
    tokens = list(ApiToken.objects.filter(user=user, revoked__isnull=True))
    for token in tokens:
        revoke_token(actor, token, why=why)
    return len(tokens)


def revoke_token(actor: Actor, token: ApiToken, *, why: str = "") -> ApiToken:
    with transaction.atomic():
        revoked = ApiToken.objects.filter(pk=token.pk, revoked__isnull=True).update(revoked=timezone.now())
        token.refresh_from_db()
        if revoked:
            record(actor, "token.revoke", token, result=AuditEntry.Result.SUCCEEDED,
                   before={"scope": token.scope}, after={"revoked": token.revoked.isoformat()}, message=why)
    return token


def token_actor(token: ApiToken, **context) -> Actor:
    # The prefix too: names are not unique, and a leaked token's actions must be told from its namesake's.
    return Actor("token", f"{token.user.get_username()}/{token.name} (bw_{token.prefix})"[:150], token.user,
                 {"token_id": token.pk, "token": f"bw_{token.prefix}", **context})


def check(text: str) -> ApiToken | None:
    """The active token that `text` is, with its user; None for anything else (unknown, wrong, expired, revoked)."""
    parts = split(text)
    if parts is None:
        return None
    prefix, secret = parts
    token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
    if token is None or not secrets.compare_digest(token.secret_sha256, digest(secret)):
        return None
    if not token.is_active() or not token.user.is_active:
        return None
    return token


def note_use(token: ApiToken, actor: Actor, client_ip: str | None) -> None:
    now = timezone.now()
    if token.last_used and now - token.last_used < USE_AUDIT_INTERVAL and token.last_used_ip == client_ip:
        return
    with transaction.atomic():
        ApiToken.objects.filter(pk=token.pk).update(last_used=now, last_used_ip=client_ip)
        record(actor, "token.use", token, result=AuditEntry.Result.SUCCEEDED)
    token.last_used, token.last_used_ip = now, client_ip
