"""Tokens: shown once, stored hashed, read-only or read-write, expiring, revocable, audited; the session works too."""

import hashlib
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from balloonweb.api.models import ApiToken
from balloonweb.audit.models import AuditEntry

from .conftest import client_with, make_token

pytestmark = pytest.mark.django_db


def test_only_the_hash_of_the_secret_is_stored(people):
    text = make_token(people["viewer"])
    token = ApiToken.objects.get()
    prefix, secret = text.removeprefix("bw_").split("_", 1)
    assert token.prefix == prefix and token.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(ApiToken.objects.values().get())
    assert client_with(text).get("/api/hosts/").status_code == 200


def test_a_wrong_expired_or_revoked_token_is_401(people):
    text = make_token(people["viewer"])
    assert client_with(text[:-1] + ("A" if text[-1] != "A" else "B")).get("/api/hosts/").status_code == 401
    assert client_with("bw_nosuchprefix_secret").get("/api/hosts/").status_code == 401
    assert client_with("not-even-a-token").get("/api/hosts/").json()["code"] == "bad_token"

    expiring = make_token(people["viewer"], expires=timezone.now() + timedelta(hours=1))
    assert client_with(expiring).get("/api/hosts/").status_code == 200
    ApiToken.objects.filter(prefix=expiring.split("_")[1]).update(expires=timezone.now() - timedelta(seconds=1))
    response = client_with(expiring).get("/api/hosts/")
    assert response.status_code == 401 and "expired or revoked" in response.json()["message"]

    people["viewer"].is_active = False
    people["viewer"].save()
    assert client_with(text).get("/api/hosts/").status_code == 401


def test_read_only_tokens_read_and_are_refused_writes(people, fleet):
    read_only = client_with(make_token(people["admin"], write=False))
    assert read_only.get("/api/domains/").status_code == 200
    response = read_only.post(f"/api/domains/{fleet['foo'].pk}/resize/", {"size": "512"}, format="json")
    assert response.status_code == 403 and response.json() == {"code": "read_only_token", "message": "this token is read-only; changes need a read-write token"}


def test_create_list_and_revoke_through_the_api_with_a_session(people, client):
    client.force_login(people["operator"])
    session = APIClient()
    session.force_login(people["operator"])
    created = session.post("/api/tokens/", {"name": "ci", "write": True}, format="json")
    assert created.status_code == 201, created.json()
    text = created.json()["token"]
    assert created.json()["scope"] == "read-write" and text.startswith(created.json()["token_prefix"] + "_")
    listed = client_with(text).get("/api/tokens/").json()["results"]
    assert [t["name"] for t in listed] == ["ci"] and "token" not in listed[0]
    # A token does not make tokens, and it cannot see anyone else's.
    assert client_with(text).post("/api/tokens/", {"name": "more"}, format="json").json()["code"] == "token_cannot_create_tokens"
    other = make_token(people["viewer"])
    assert client_with(other).get(f"/api/tokens/{listed[0]['id']}/").status_code == 404

    assert client_with(text).delete(f"/api/tokens/{listed[0]['id']}/").status_code == 204
    assert client_with(text).get("/api/hosts/").status_code == 401
    actions = list(AuditEntry.objects.order_by("id").values_list("action", "actor_label"))
    label = f"operator/ci ({created.json()['token_prefix']})"
    assert ("token.create", "operator") in actions and ("token.revoke", label) in actions
    assert ("token.use", label) in actions


def test_the_session_needs_csrf_for_changes(people, fleet):
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(people["operator"])
    assert browser.get("/api/domains/").status_code == 200
    response = browser.post(f"/api/domains/{fleet['foo'].pk}/resize/", {"size": "512"}, format="json")
    assert response.status_code == 403 and "CSRF" in response.json()["message"]
    # A form-encoded body carries the token as Django's forms do; it is not taken for a field the request lacks.
    browser.get("/")  # the page sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    form = browser.post(f"/api/domains/{fleet['foo'].pk}/resize/", f"size=512&csrfmiddlewaretoken={token}",
                        content_type="application/x-www-form-urlencoded")
    assert form.status_code == 202, form.content


def test_use_is_audited_once_an_hour_per_address(people):
    client = client_with(make_token(people["viewer"]))
    for _ in range(3):
        client.get("/api/hosts/")
    assert AuditEntry.objects.filter(action="token.use").count() == 1
    ApiToken.objects.update(last_used=timezone.now() - timedelta(hours=2))
    client.get("/api/hosts/")
    assert AuditEntry.objects.filter(action="token.use").count() == 2
    entry = AuditEntry.objects.filter(action="token.use").first()
    assert (entry.actor_kind, entry.client_ip) == ("token", "127.0.0.1")


def test_the_tokens_page_shows_a_new_token_once_and_revokes(people, client):
    client.force_login(people["admin"])
    page = client.post("/account/tokens/", {"name": "monitoring", "expires_days": "30"})
    assert page.status_code == 200
    text = page.context["created"]["text"]
    assert text in page.content.decode()
    token = ApiToken.objects.get()
    assert not token.write and token.expires is not None
    again = client.get("/account/tokens/").content.decode()
    assert text not in again and f"bw_{token.prefix}_" in again
    client.post("/account/tokens/", {"revoke": token.pk})
    assert ApiToken.objects.get().revoked is not None
    assert client_with(text).get("/api/hosts/").status_code == 401
    # Someone else's token id does nothing.
    other = make_token(people["viewer"])
    client.post("/account/tokens/", {"revoke": ApiToken.objects.get(prefix=other.split("_")[1]).pk})
    assert client_with(other).get("/api/hosts/").status_code == 200


def test_the_command_makes_the_first_token(people, capsys):
    call_command("apitoken", "create", "root", "bootstrap", "--write", "--expires-days", "7")
    text = capsys.readouterr().out.strip()
    assert client_with(text).get("/api/hosts/").status_code == 200
    call_command("apitoken", "revoke", text.rsplit("_", 1)[0])
    assert client_with(text).get("/api/hosts/").status_code == 401


@pytest.mark.parametrize("days", ["0", "3651", "1000000000"])
def test_the_command_refuses_an_expiry_out_of_range_as_the_page_does(people, days):
    with pytest.raises(CommandError, match="the expiry is a number of days from 1 to 3650, or none"):
        call_command("apitoken", "create", "root", "bootstrap", "--expires-days", days)
    assert not ApiToken.objects.exists()
