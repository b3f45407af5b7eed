"""Sessions and sign-in: a new session id at login, idle timeout, sign-out everywhere, the login rate limit,
password validators, audit of sign-in/out and failures with request id and client address, `check --deploy`,
and open sockets closed when a role is lost or the user signs out."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from django.urls import reverse

from balloonweb.access.models import Membership, UserSession
from balloonweb.audit.models import AuditEntry
from balloonweb.routing import websocket_urlpatterns

from .conftest import PASSWORD, World

ROOT = Path(__file__).resolve().parents[2]


def sign_in(client: Client, username: str, password: str = PASSWORD, **headers):
    return client.post(reverse("login"), {"username": username, "password": password}, headers=headers)


def test_sign_in_gives_a_new_session_id_and_is_audited(world: World):
    client = Client()
    client.get(reverse("login"))
    client.session.save()
    before = client.session.session_key
    response = sign_in(client, "viewer")
    assert response.status_code == 302
    assert client.session.session_key != before
    entry = AuditEntry.objects.get(action="auth.login")
    assert (entry.actor_label, entry.result, entry.client_ip) == ("viewer", "succeeded", "127.0.0.1")
    assert entry.request_id == response["X-Request-ID"]
    assert UserSession.objects.filter(user=world.users["viewer"], session_key=client.session.session_key).exists()


def test_failed_sign_ins_are_audited_then_rate_limited(world: World):
    client = Client()
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        assert sign_in(client, "viewer", "wrong").status_code == 200
    failed = AuditEntry.objects.filter(action="auth.login_failed")
    assert failed.count() == settings.LOGIN_FAILURE_LIMIT and set(failed.values_list("result", flat=True)) == {"failed"}
    # Now even the right password is refused, without being checked, and the page says how long to wait.
    response = sign_in(client, "viewer")
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    assert AuditEntry.objects.filter(action="auth.login_failed", result="refused").count() == 1
    assert "Too many failed sign-ins for this name or address: try again in about" in response.content.decode()
    assert "Please enter a correct username and password" not in response.content.decode()
    # Another user from another address is not held up.
    assert sign_in(Client(REMOTE_ADDR="192.0.2.7"), "operator").status_code == 302


def test_a_burst_of_parallel_attempts_gets_no_more_tries_than_the_limit(world: World, monkeypatch):
    """The limit was checked before a password check and counted after it: fifty attempts sent at once all
    passed the check before the first failure was counted."""
    import threading
    import time

    from django.contrib.auth.backends import ModelBackend
    from django.test import RequestFactory

    from balloonweb.access.ratelimit import RateLimitedModelBackend

    checked = []

    def slow_check(self, request, username=None, password=None, **kwargs):  # a password hash takes this long
        checked.append(username)
        time.sleep(0.2)

    monkeypatch.setattr(ModelBackend, "authenticate", slow_check)
    start = threading.Barrier(20)

    def attempt():
        start.wait()
        try:
            RateLimitedModelBackend().authenticate(RequestFactory().post("/login/"), username="viewer", password="guess")
        except Exception:  # noqa: BLE001 - PermissionDenied past the limit
            pass

    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(checked) == settings.LOGIN_FAILURE_LIMIT


def test_a_guesser_from_one_address_does_not_lock_the_owner_out_from_another(world: World):
    guesser = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(4 * settings.LOGIN_FAILURE_LIMIT + 1):  # past the name's limit too, had refused guesses counted
        sign_in(guesser, "viewer", "wrong")
    assert "_auth_user_id" not in guesser.session
    assert sign_in(Client(REMOTE_ADDR="192.0.2.1"), "viewer").status_code == 302


def test_the_address_behind_a_trusted_proxy_is_the_forwarded_one(world: World, settings):
    forwarded = {"X-Forwarded-For": "203.0.113.9, 10.0.0.2"}
    sign_in(Client(), "viewer", "wrong", **forwarded)  # no trusted proxy: the header proves nothing
    settings.TRUSTED_PROXIES = ["127.0.0.1", "10.0.0.0/8"]
    sign_in(Client(), "viewer", "wrong", **forwarded)
    assert list(AuditEntry.objects.filter(action="auth.login_failed").order_by("id").values_list("client_ip", flat=True)) == ["127.0.0.1", "203.0.113.9"]


def test_the_session_lasts_the_idle_timeout_from_the_last_request_a_person_made(world: World):
    """The page's own refreshes (live hints, charts) do not renew it: a console left open overnight signed in,
    Force off and all, stayed signed in."""
    client = world.client("viewer")
    response = client.get(reverse("fleet"))
    assert response.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == settings.SESSION_COOKIE_AGE
    assert settings.SESSION_COOKIE_AGE <= 24 * 3600
    background = client.get(reverse("fleet"), HTTP_HX_REQUEST="true", HTTP_X_BACKGROUND="1")
    assert background.status_code == 200 and settings.SESSION_COOKIE_NAME not in background.cookies


def test_an_htmx_request_of_a_signed_out_page_sends_the_whole_page_to_the_login(world: World):
    """Not the login page swapped into the control that asked."""
    response = Client().post(reverse("domain-resize", args=[world.da.pk]), {"memory": "512"},
                             HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL=f"http://testserver/domains/{world.da.pk}/")
    assert response.status_code == 204 and response["HX-Redirect"] == f"/login/?next=%2Fdomains%2F{world.da.pk}%2F"


def test_an_htmx_refusal_of_a_view_is_a_fragment_beside_the_control(world: World):
    outsider = world.client("outsider")
    response = outsider.get(reverse("domain-part", args=[world.da.pk, "figures"]), HTTP_HX_REQUEST="true")
    assert response.status_code == 404 and response.content.decode().startswith('<p class="error" role="alert">Not found: ')
    assert "topbar" not in response.content.decode()
    assert "topbar" in outsider.get(reverse("domain", args=[world.da.pk])).content.decode()  # a page stays a page


def test_sign_out_and_sign_out_everywhere(world: World):
    laptop, phone = Client(), Client(REMOTE_ADDR="192.0.2.8")
    for client in (laptop, phone):
        assert sign_in(client, "operator").status_code == 302
    assert laptop.get(reverse("fleet")).status_code == 200 and phone.get(reverse("fleet")).status_code == 200
    response = laptop.post(reverse("sign-out-everywhere"))
    assert response.status_code == 302
    for client in (laptop, phone):
        assert client.get(reverse("fleet"))["Location"].startswith(reverse("login"))
    assert not UserSession.objects.filter(user=world.users["operator"]).exists()
    actions = list(AuditEntry.objects.filter(actor_label="operator").order_by("id").values_list("action", flat=True))
    assert actions == ["auth.login", "auth.login", "auth.logout_everywhere", "auth.logout"]


def test_the_current_password_on_the_password_page_is_rate_limited_and_audited(world: World):
    """Someone at an unlocked console could guess it there without limit, and nothing was recorded."""
    client = Client()
    sign_in(client, "viewer")
    wrong = {"old_password": "guess", "new_password1": "a brand new passphrase", "new_password2": "a brand new passphrase"}
    for _ in range(settings.LOGIN_FAILURE_LIMIT - 1):
        assert "Your old password was entered incorrectly" in client.post(reverse("password_change"), wrong).content.decode()
    assert "Too many wrong passwords" in client.post(reverse("password_change"), wrong).content.decode()  # the last try
    right = client.post(reverse("password_change"), {**wrong, "old_password": PASSWORD})
    assert right.status_code == 200 and "Too many wrong passwords: try again in about" in right.content.decode()
    assert AuditEntry.objects.filter(action="auth.login_failed", actor_label="viewer").count() == settings.LOGIN_FAILURE_LIMIT + 1


def test_a_browser_that_changed_its_password_is_still_signed_out_everywhere(world: World):
    """Keeping the person signed in gives the session a new key; the list of sessions kept the old one, so
    "sign out everywhere" left that browser signed in."""
    from balloonweb.access import accounts
    from balloonweb.access.actors import Actor

    laptop = Client()
    sign_in(laptop, "viewer")
    changed = laptop.post(reverse("password_change"), {"old_password": PASSWORD, "new_password1": "a brand new passphrase",
                                                       "new_password2": "a brand new passphrase"})
    assert changed.status_code == 302 and laptop.get(reverse("fleet")).status_code == 200
    accounts.sign_out_everywhere(Actor.for_user(world.users["superuser"]), world.users["viewer"])
    assert laptop.get(reverse("fleet"))["Location"].startswith(reverse("login"))


def test_passwords_are_validated(world: World):
    client = world.client("viewer")
    response = client.post(reverse("password_change"), {"old_password": PASSWORD, "new_password1": "password", "new_password2": "password"})
    assert response.status_code == 200 and "too common" in response.content.decode()
    assert len(settings.AUTH_PASSWORD_VALIDATORS) == 4


def test_check_deploy_is_clean_with_the_production_variables():
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "DJANGO_SETTINGS_MODULE"}}
    env.update(DJANGO_SETTINGS_MODULE="balloonweb.settings", SECRET_KEY=secrets.token_urlsafe(50), SECURE_HTTPS="1",
               ALLOWED_HOSTS="balloon.example.com")
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


# -- sockets -----------------------------------------------------------------------------------------------------


async def watch_then(path: str, user, change) -> dict:
    """Open a socket as `user`, make the change (in a thread: it uses the ORM), return what the socket saw."""
    from channels.db import database_sync_to_async

    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    await database_sync_to_async(change)()
    output = await communicator.receive_output(timeout=5)
    await communicator.disconnect()
    return output


@pytest.mark.parametrize("change", ["removed", "demoted_elsewhere"])
def test_losing_a_role_closes_the_users_sockets(live_world: World, change: str):
    viewer = live_world.users["viewer"]

    def lose_role():
        if change == "removed":
            Membership.objects.get(user=viewer, team=live_world.team_a).delete()
        else:
            membership = Membership.objects.get(user=viewer, team=live_world.team_a)
            membership.role = Membership.Role.OPERATOR  # any role change: the page reconnects and is checked again
            membership.save()

    output = async_to_sync(watch_then)(f"/ws/hosts/{live_world.a1.pk}/", viewer, lose_role)
    assert output["type"] == "websocket.close"


def test_signing_out_closes_the_users_sockets(live_world: World):
    operator = live_world.users["operator"]
    client = Client()
    assert sign_in(client, "operator").status_code == 302
    output = async_to_sync(watch_then)(f"/ws/domains/{live_world.da.pk}/", operator, lambda: client.post(reverse("logout")))
    assert output["type"] == "websocket.close"


def test_without_the_cache_sign_in_still_works(world: World, settings):
    """Redis down: the rate limit is skipped (and logged), sign-in is not refused."""
    # Changing CACHES makes Django drop its cache connections (django.test.signals), here and when restored.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}}
    assert sign_in(Client(), "viewer", "wrong").status_code == 200
    assert sign_in(Client(), "viewer").status_code == 302


def test_a_stale_session_cookie_does_not_start_a_session(world: World):
    """A request that never reads its session (here /metrics) with a cookie of an ended session: nothing saved."""
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = "stale0000000000000000000000000000"
    from django.contrib.sessions.models import Session

    response = client.get("/metrics")
    assert response.status_code == 200 and not Session.objects.exists()
    assert response.cookies.get(settings.SESSION_COOKIE_NAME) is None or response.cookies[settings.SESSION_COOKIE_NAME].value == ""
