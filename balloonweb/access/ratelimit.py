"""Login rate limit: an attempt is counted before its password is checked, and refused past LOGIN_FAILURE_LIMIT
attempts for one user name from one address, or four times as many for the name from anywhere or from the
address for any name (a shared NAT), within LOGIN_FAILURE_WINDOW seconds. A sign-in that succeeds gives its
attempt back. Counters live in the shared cache (Redis), counted atomically, so that every web process sees the
same ones and a burst of parallel attempts cannot all pass before the first failure is counted; and a guesser
from one address cannot lock the name out for its owner elsewhere.

Enforced in the authentication backend, so that every password check (ours, Django's admin, the browsable API,
the current password on the password change page) is covered; `LoginForm` turns the refusal into a message that
says how long to wait.
"""

import logging
import time
from functools import wraps

from django import forms
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth import forms as auth_forms
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
    name = username.strip().lower() if username else ""
    wide = settings.LOGIN_FAILURE_LIMIT * IP_FACTOR
    keys = []
    if name and ip:
        keys.append((f"login-fail:pair:{name}:{ip}", settings.LOGIN_FAILURE_LIMIT))
    if name:
        keys.append((f"login-fail:user:{name}", wide if ip else settings.LOGIN_FAILURE_LIMIT))
    if ip:
        keys.append((f"login-fail:ip:{ip}", wide))
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


@_fail_open(True)
def take_attempt(username: str | None, ip: str | None) -> bool:
    """Count an attempt before its password is checked; False if it is one too many."""
    window = settings.LOGIN_FAILURE_WINDOW
    # From the narrowest (this name from this address) out, and no further once one is over: attempts refused
    # for the pair must not count for the name everywhere, or a guesser would lock its owner out after all.
    for key, limit in _keys(username, ip):
        # add() only sets a missing key: the window runs from the first attempt, a fixed window.
        cache.add(f"{key}:since", time.time(), window)
        cache.add(key, 0, window)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add() and incr()
            cache.set(key, 1, window)
            count = 1
        if count > limit:
            return False
    return True


@_fail_open(None)
def give_back(username: str | None, ip: str | None) -> None:
    """A sign-in that succeeded: the name's failures are forgotten, and the address's count loses this attempt
    (its other failures stay: they may be a guesser's)."""
    for key, _limit in _keys(username, ip):
        if key.startswith("login-fail:ip:"):
            try:
                cache.decr(key)
            except ValueError:  # expired meanwhile
                pass
        else:
            cache.delete_many([key, f"{key}:since"])


def request_ip(request) -> str | None:
    if request is None:
        return None
    return getattr(request, "client_ip", None) or client_ip(request.META)


class RateLimitedModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        username = username if username is not None else kwargs.get(self._username_field())
        ip = request_ip(request)
        if not take_attempt(username, ip):
            if request is not None:
                request.login_rate_limited = True
            # PermissionDenied stops authenticate() at once and fires user_login_failed.
            raise PermissionDenied("too many failed sign-ins")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            give_back(username, ip)
        return user

    @staticmethod
    def _username_field() -> str:
        from django.contrib.auth import get_user_model

        return get_user_model().USERNAME_FIELD


def rate_limited(what: str, wait_s: int) -> forms.ValidationError:
    minutes = max(1, round(wait_s / 60))
    return forms.ValidationError(f"{what}: try again in about {minutes} minute{'s' if minutes > 1 else ''}.", code="rate_limited")


class PasswordChangeForm(auth_forms.PasswordChangeForm):
    """Django's, with the current password checked as a sign-in is (rate limited, a failure audited): Django's
    form checks it on the user directly, so someone at an unlocked console could guess it without limit."""

    def __init__(self, user, *args, request=None, **kwargs):
        self.request = request
        super().__init__(user, *args, **kwargs)

    def clean_old_password(self):
        old_password = self.cleaned_data["old_password"]
        name = self.user.get_username()
        same = authenticate(self.request, username=name, password=old_password)
        if same is None or same.pk != self.user.pk:
            wait = retry_after(name, request_ip(self.request))
            if wait:
                raise rate_limited("Too many wrong passwords", wait)
            raise forms.ValidationError(self.error_messages["password_incorrect"], code="password_incorrect")
        return old_password


class LoginForm(AuthenticationForm):
    """Django's login form, saying how long to wait when the rate limit refused the attempt."""

    def get_invalid_login_error(self):
        wait = retry_after(self.cleaned_data.get("username"), request_ip(self.request))
        if wait:
            return rate_limited("Too many failed sign-ins for this name or address", wait)
        return super().get_invalid_login_error()
