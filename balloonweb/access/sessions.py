"""Signing out everywhere: end every session of a user and close their open sockets."""

from importlib import import_module

from django.conf import settings
from django.db import transaction

from balloonweb.audit.log import record
from balloonweb.audit.models import AuditEntry

from . import actors, sockets
from .models import UserSession


def end_all_sessions(user, *, except_key: str | None = None) -> int:
    """Delete the user's sessions (all, or all but `except_key`); returns how many."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    with transaction.atomic():
        rows = UserSession.objects.filter(user=user)
        if except_key:
            rows = rows.exclude(session_key=except_key)
        keys = list(rows.values_list("session_key", flat=True))
        for key in keys:
            store(key).delete(key)
        rows.delete()
        record(actors.current(), "auth.logout_everywhere", result=AuditEntry.Result.SUCCEEDED,
               after={"user": user.get_username()}, message=f"{len(keys)} sessions ended")
        sockets.access_changed(user.pk, reason="signed out everywhere", sessions=keys)
    return len(keys)
