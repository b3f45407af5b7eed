"""People's accounts (balloonweb/access/accounts.py): a superuser creates them, gives new passwords, deactivates
and reactivates them, from the People page and the API, on the access tests' world."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from balloonweb.access import accounts
from balloonweb.access.actors import Actor
from balloonweb.access.models import Membership, UserSession
from balloonweb.api import tokens
from balloonweb.audit.models import AuditEntry
from domains.services import Conflict
from tests.api.conftest import client_with

from .conftest import PASSWORD, World

User = get_user_model()


def sign_in(username: str, password: str) -> Client:
    client = Client()
    client.post(reverse("login"), {"username": username, "password": password})
    return client


def signed_in(client: Client) -> bool:
    return client.get(reverse("fleet")).status_code == 200


def shown_password(response) -> str:
    match = re.search(r'<code class="secret" id="handed-password">([^<]+)</code>', response.content.decode())
    assert match, "the page shows no password"
    return match.group(1)


def test_a_superuser_creates_an_account_in_a_team_and_hands_over_its_password(world: World):
    root = world.client("superuser")
    assert '<a href="/people/"' in root.get(reverse("fleet")).content.decode()
    assert '<a href="/people/"' not in world.client("admin").get(reverse("fleet")).content.decode()
    response = root.post(reverse("people"), {"username": "carol", "email": "carol@example.org", "password": "",
                                             "team": str(world.team_a.pk), "role": "operator"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert "Account carol created and joined A as operator." in response.content.decode()
    password = shown_password(response)
    assert len(password) >= 16
    carol = User.objects.get(username="carol")
    assert carol.email == "carol@example.org" and carol.is_active and not carol.is_superuser
    assert Membership.objects.get(user=carol).role == "operator"
    # Carol signs in with it and operates team A's domain.
    carol_browser = sign_in("carol", password)
    assert f'href="/domains/{world.da.pk}/"' in carol_browser.get(reverse("domains")).content.decode()
    # Audited as root, the password itself nowhere in the log.
    entries = AuditEntry.objects.filter(actor_label="root").exclude(action="auth.login").order_by("id")
    assert [e.action for e in entries] == ["user.create", "membership.add"]
    assert password not in str(list(AuditEntry.objects.values_list("before", "after", "message")))
    # The list shows her, with her team, and finds her by part of her e-mail.
    listed = root.get(reverse("people"), {"q": "example.org"}).content.decode()
    assert "<td>carol" in listed and "A</a> (operator)" in listed and "<td>viewer" not in listed


def test_a_typed_password_is_used_and_not_shown(world: World):
    response = world.client("superuser").post(reverse("people"), {"username": "dave", "password": "a long and unusual phrase"})
    assert response.status_code == 200 and 'id="handed-password"' not in response.content.decode()
    assert "The password is the one you typed." in response.content.decode()
    assert signed_in(sign_in("dave", "a long and unusual phrase"))
    assert not Membership.objects.filter(user__username="dave").exists()


@pytest.mark.parametrize("form, status, message", [
    ({"username": "bad name"}, 400, "'bad name' is not a user name: use 1 to 150 letters, digits and @ . + - _"),
    ({"username": ""}, 400, "'' is not a user name"),
    ({"username": "Viewer"}, 409, "an account named Viewer already exists"),
    ({"username": "erin", "email": "not-an-address"}, 400, "'not-an-address' is not an e-mail address (leave it empty for none)"),
    ({"username": "erin", "password": "pass"}, 400, "the password is refused: This password is too short. It must contain at least 8 characters. This password is too common."),
    ({"username": "erinsmith", "password": "erinsmith1"}, 400, "the password is refused: The password is too similar to the username."),
    ({"username": "erin", "team": "Z"}, 400, "there is no team Z; give a team's name or id, or nothing for no team"),
    ({"username": "erin", "team": "A", "role": "owner"}, 400, "'owner' is not a role: use viewer, operator or admin"),
])
def test_a_refused_account_says_why_keeps_the_form_and_creates_nothing(world: World, form, status, message):
    before = User.objects.count()
    response = world.client("superuser").post(reverse("people"), {"email": "", "password": "", "team": "", "role": "viewer", **form})
    page = response.content.decode()
    assert response.status_code == status
    assert message.replace("'", "&#x27;") in page
    if form["username"]:
        assert f'value="{form["username"]}"' in page
    assert User.objects.count() == before


def test_deactivating_signs_the_person_out_and_stops_their_tokens(world: World):
    viewer_browser = sign_in("viewer", PASSWORD)
    _token, text = tokens.create_token(Actor.for_user(world.users["viewer"]), world.users["viewer"], "script")
    assert signed_in(viewer_browser) and client_with(text).get("/api/hosts/").status_code == 200
    root = world.client("superuser")
    response = root.post(reverse("person-change", args=[world.users["viewer"].pk, "active"]), {"active": "0"}, follow=True)
    assert "viewer is deactivated and was signed out everywhere." in response.content.decode()
    assert "deactivated" in response.content.decode() and "Reactivate viewer" in response.content.decode()
    assert not signed_in(viewer_browser) and not UserSession.objects.filter(user=world.users["viewer"]).exists()
    assert client_with(text).get("/api/hosts/").status_code == 401
    assert not signed_in(sign_in("viewer", PASSWORD))
    entry = AuditEntry.objects.get(action="user.update")
    assert (entry.actor_label, entry.before, entry.after) == ("root", {"user": "viewer", "is_active": True}, {"user": "viewer", "is_active": False})
    # Her membership stays, for when she comes back.
    root.post(reverse("person-change", args=[world.users["viewer"].pk, "active"]), {"active": "1"})
    assert signed_in(sign_in("viewer", PASSWORD)) and Membership.objects.filter(user=world.users["viewer"]).exists()


def test_no_one_deactivates_themselves_or_the_last_superuser(world: World):
    root = world.users["superuser"]
    response = world.client("superuser").post(reverse("person-change", args=[root.pk, "active"]), {"active": "0"}, follow=True)
    assert "you cannot deactivate your own account; another superuser can." in response.content.decode()
    with pytest.raises(Conflict, match="root is the last active superuser: no one could manage accounts then"):
        accounts.set_active(Actor.command_line(), root, False)
    second = User.objects.create_superuser("root2", password=PASSWORD)
    accounts.set_active(Actor.for_user(second), root, False)
    root.refresh_from_db()
    assert not root.is_active


def test_a_new_password_signs_the_person_out_everywhere(world: World):
    viewer_browser = sign_in("viewer", PASSWORD)
    _, viewer_token = tokens.create_token(Actor.for_user(world.users["viewer"]), world.users["viewer"], "laptop", write=True)
    response = world.client("superuser").post(reverse("person-change", args=[world.users["viewer"].pk, "password"]))
    assert "viewer has a new password and was signed out everywhere." in response.content.decode()
    password = shown_password(response)
    assert not signed_in(viewer_browser) and not signed_in(sign_in("viewer", PASSWORD))
    assert signed_in(sign_in("viewer", password))
    assert AuditEntry.objects.filter(action="auth.password_change", actor_label="root", after={"user": "viewer"}).exists()
    # Tokens need no password: one made with the old one is revoked too.
    assert AuditEntry.objects.filter(action="token.revoke", message="the account was given a new password").count() == 1
    assert tokens.check(viewer_token) is None
    # A superuser changes their own on the password page, with the current one.
    own = world.client("superuser").post(reverse("person-change", args=[world.users["superuser"].pk, "password"]), follow=True)
    assert "change your own password on the password page (/password/), with your current one." in own.content.decode()


def test_a_superuser_signs_a_person_out_everywhere_and_their_password_still_works(world: World):
    laptop, phone = sign_in("viewer", PASSWORD), sign_in("viewer", PASSWORD)
    response = world.client("superuser").post(reverse("person-change", args=[world.users["viewer"].pk, "sign-out"]), follow=True)
    assert "viewer was signed out everywhere (2 sessions)." in response.content.decode()
    assert not signed_in(laptop) and not signed_in(phone)
    assert signed_in(sign_in("viewer", PASSWORD))
    entry = AuditEntry.objects.filter(action="auth.logout_everywhere").get()
    assert (entry.actor_label, entry.after, entry.message) == ("root", {"user": "viewer"}, "2 sessions ended")


def test_the_api_manages_accounts_for_superusers_and_shows_others_their_own(world: World):
    from rest_framework.test import APIClient

    root = APIClient()
    root.force_authenticate(world.users["superuser"])
    created = root.post("/api/users/", {"username": "frank", "team": "A", "role": "admin"}, format="json")
    assert created.status_code == 201 and created["Cache-Control"] == "no-store"
    body = created.json()
    assert body["username"] == "frank" and body["teams"] == [{"team": world.team_a.pk, "team_name": "A", "role": "admin"}]
    assert signed_in(sign_in("frank", body["password"]))
    frank = User.objects.get(username="frank")
    assert root.patch(f"/api/users/{frank.pk}/", {"is_active": False}, format="json").json()["is_active"] is False
    assert root.patch(f"/api/users/{frank.pk}/", {"is_active": True}, format="json").json()["is_active"] is True
    renewed = root.post(f"/api/users/{frank.pk}/password/", {}, format="json").json()
    assert renewed["password"] != body["password"] and signed_in(sign_in("frank", renewed["password"]))
    assert "password" not in root.post(f"/api/users/{frank.pk}/password/", {"password": "another long phrase"}, format="json").json()
    refused = root.post("/api/users/", {"username": "FRANK"}, format="json")
    assert refused.status_code == 409 and refused.json()["code"] == "name_taken"
    # A team admin sees only their own account, and a refused creation is audited.
    admin = APIClient()
    admin.force_authenticate(world.users["admin"])
    assert [u["username"] for u in admin.get("/api/users/").json()["results"]] == ["admin"]
    assert admin.post("/api/users/", {"username": "mallory"}, format="json").status_code == 403
    assert AuditEntry.objects.filter(action="user.create", result="refused", actor_label="admin").exists()
    assert not User.objects.filter(username="mallory").exists()


def test_adding_a_member_without_an_account_points_to_the_people_page(world: World):
    response = world.client("admin").post(reverse("team-add-member", args=[world.team_a.pk]), {"username": "nobody", "role": "viewer"})
    assert "no active user named nobody: a superuser creates accounts on the People page (/people/)" in response.content.decode()


def test_the_people_page_takes_any_query(world: World):
    root = world.client("superuser")
    for query in ({"q": "a\x00b", "page": "-1"}, {"q": "x" * 500, "page": "9999"}, {"q": "'%_"}):
        response = root.get(reverse("people"), query)
        assert response.status_code == 200 and b"{%" not in response.content
