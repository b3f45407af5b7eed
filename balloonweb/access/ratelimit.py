"""Login rate limit: after LOGIN_FAILURE_LIMIT failures for one user name (or four times as many from one
address, which may be a shared NAT) within LOGIN_FAILURE_WINDOW seconds, sign-in is refused until the window
ends. Counters live in the shared cache (Redis), so every web process sees the same ones.

Enforced in the authentication backend, so that every login form (ours, Django's admin, the browsable API)
is covered; `LoginForm` turns the refusal into a message that says how long to wait.
"""

import logging
import time
from functools import wraps

from django import forms
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import PermissionDenied

from .middleware import client_ip

IP_FACTOR = 4
log = logging.getLogger(__name__)


def _fail_open(default):
    """Without the cache (Redis down) sign-in goes on unlimited rather than not at all; the log says so."""

    def wrap(function):
        @wraps(function)
        def run(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except Exception:  # noqa: BLE001 - any cache failure
                log.warning("login rate limit not applied: the cache is unreachable", exc_info=True)
                return default

        return run

    return wrap


def _keys(username: str | None, ip: str | None) -> list[tuple[str, int]]:
    keys = []
    if username:
        keys.append((f"login-fail:user:{username.strip().lower()}", settings.LOGIN_FAILURE_LIMIT))
    if ip:
        keys.append((f"login-fail:ip:{ip}", settings.LOGIN_FAILURE_LIMIT * IP_FACTOR))
    return keys


@_fail_open(0)
def retry_after(username: str | None, ip: str | None) -> int:
    """Seconds until this name and address may try again; 0 if they may now."""
    wait = 0
    for key, limit in _keys(username, ip):
        if (cache.get(key) or 0) >= limit:
            started = cache.get(f"{key}:since") or time.time()
            wait = max(wait, int(started + settings.LOGIN_FAILURE_WINDOW - time.time()) + 1)
    return wait


@_fail_open(None)
def note_failure(username: str | None, ip: str | None) -> None:
    window = settings.LOGIN_FAILURE_WINDOW
    for key, _limit in _keys(username, ip):
        # add() only sets a missing key: the window runs from the first failure, a fixed window.
        cache.add(f"{key}:since", time.time(), window)
        cache.add(key, 0, window)
        try:
            cache.incr(key)
        except ValueError:  # expired between add() and incr()
            cache.set(key, 1, window)


@_fail_open(None)
def clear(username: str | None) -> None:
    """A successful sign-in forgets that name's failures (not the address's: that is the guesser's)."""
    for key, _limit in _keys(username, None):
        cache.delete_many([key, f"{key}:since"])


def request_ip(request) -> str | None:
    if request is None:
        return None
    return getattr(request, "client_ip", None) or client_ip(request.META)


class RateLimitedModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        username = username if username is not None else kwargs.get(self._username_field())
        if retry_after(username, request_ip(request)):
            if request is not None:
                request.login_rate_limited = True
            # PermissionDenied stops authenticate() at once and fires user_login_failed.
            raise PermissionDenied("too many failed sign-ins")
        return super().authenticate(request, username=username, password=password, **kwargs)

    @staticmethod
    def _username_field() -> str:
        from django.contrib.auth import get_user_model

        return get_user_model().USERNAME_FIELD


class LoginForm(AuthenticationForm):
    """Django's login form, saying how long to wait when the rate limit refused the attempt."""

    def get_invalid_login_error(self):
        wait = retry_after(self.cleaned_data.get("username"), request_ip(self.request))
        if wait:
            minutes = max(1, round(wait / 60))
            return forms.ValidationError(
                f"Too many failed sign-ins for this name or address: try again in about {minutes} minute{'s' if minutes > 1 else ''}.",
                code="rate_limited",
            )
        return super().get_invalid_login_error()
