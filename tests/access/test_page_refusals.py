"""Refusals on the team and people pages are audited as through the API: each page action goes through the
service the API calls (balloonweb/api/teams.py, balloonweb/access/accounts.py), so that a refusal is written
once, with the same action and message, and the page says why. Outsiders still get 404 and learn nothing."""

import html
from dataclasses import dataclass

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from balloonweb.access.models import Membership, Team
from balloonweb.audit.models import AuditEntry

from .conftest import World

NOT_A_TEAM_ADMIN = "your role in this team does not allow 'manage_team' on A"
REFUSED = AuditEntry.Result.REFUSED


@dataclass
class Refused:
    who: str
    page: tuple  # (URL name, its arguments: World attribute paths or literals)
    data: dict
    action: str
    message: str
    api: tuple | None = None  # the same request through the API: (method, URL with {names}, body)


def value(world: World, path: str):
    """A World attribute path ("users.viewer.pk"), or a literal without a dot ("active")."""
    if "." not in path:
        return path
    obj = world
    for part in path.split("."):
        obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
    return obj


def page_url(world: World, page: tuple) -> str:
    name, *args = page
    return reverse(name, args=[value(world, arg) for arg in args])


def api_url(world: World, template: str) -> str:
    return template.format(team_a=world.team_a.pk, viewer=world.memberships["viewer"].pk)


REFUSALS = [
    Refused("operator", ("team-add-member", "team_a.pk"), {"username": "root", "role": "viewer"}, "membership.add", NOT_A_TEAM_ADMIN,
            ("post", "/api/memberships/", {"team": "{team_a}", "username": "root", "role": "viewer"})),
    Refused("viewer", ("team-member-role", "team_a.pk", "memberships.viewer.pk"), {"role": "admin"}, "membership.role", NOT_A_TEAM_ADMIN,
            ("patch", "/api/memberships/{viewer}/", {"role": "admin"})),
    Refused("operator", ("team-member-remove", "team_a.pk", "memberships.viewer.pk"), {}, "membership.remove", NOT_A_TEAM_ADMIN,
            ("delete", "/api/memberships/{viewer}/", None)),
    Refused("operator", ("team", "team_a.pk"), {"operator_max_kib": "2G"}, "team.update", NOT_A_TEAM_ADMIN,
            ("patch", "/api/teams/{team_a}/", {"operator_max_mib": 2048})),
    Refused("admin", ("teams",), {"name": "C"}, "team.create", "only a superuser creates teams",
            ("post", "/api/teams/", {"name": "C"})),
    Refused("admin", ("team-delete", "team_a.pk"), {}, "team.delete", "only a superuser deletes teams",
            ("delete", "/api/teams/{team_a}/", None)),
    Refused("admin", ("people",), {"username": "mallory", "team": "A", "role": "admin"}, "user.create", "only a superuser creates accounts",
            ("post", "/api/users/", {"username": "mallory", "team": "A", "role": "admin"})),
    # The API shows a person only their own account: these have no API twin to compare with.
    Refused("operator", ("person-change", "users.viewer.pk", "active"), {"active": "0"}, "user.update",
            "only a superuser deactivates or reactivates accounts"),
    Refused("operator", ("person-change", "users.viewer.pk", "password"), {}, "auth.password_change",
            "only a superuser gives another person a new password"),
    Refused("operator", ("person-change", "users.viewer.pk", "sign-out"), {}, "auth.logout_everywhere",
            "only a superuser signs another person out"),
    # An account that does not exist is refused word for word as one that does: else the answer tells which exist.
    Refused("operator", ("person-change", "999999", "active"), {"active": "0"}, "user.update",
            "only a superuser deactivates or reactivates accounts"),
    Refused("operator", ("person-change", "999999", "password"), {}, "auth.password_change",
            "only a superuser gives another person a new password"),
]


def refusals():
    return AuditEntry.objects.filter(result=REFUSED).order_by("id")


def what_it_says(entry: AuditEntry) -> tuple:
    return (entry.action, entry.result, entry.message, entry.actor_kind, entry.actor_label, entry.actor_user_id,
            entry.object_type, entry.object_id, entry.team_id, entry.after)


def state() -> tuple:
    return (list(Team.objects.order_by("pk").values()), list(Membership.objects.order_by("pk").values()),
            list(Team._meta.apps.get_model("auth", "User").objects.order_by("pk").values("pk", "is_active", "password")))


@pytest.mark.parametrize("case", REFUSALS, ids=lambda case: f"{case.who}-{case.action}")
def test_a_refusal_on_a_page_is_audited_once_and_the_page_says_why(world: World, case: Refused):
    before = state()
    response = world.client(case.who).post(page_url(world, case.page), case.data)
    assert response.status_code == 403
    assert html.escape(case.message) in response.content.decode()
    entry = refusals().get()  # exactly one
    assert (entry.action, entry.message, entry.actor_label, entry.actor_user_id) == (
        case.action, case.message, case.who, world.users[case.who].pk)
    assert entry.request_id and entry.client_ip == "127.0.0.1"  # the page's request, as for any entry of a page
    assert state() == before  # and nothing changed


@pytest.mark.parametrize("case", [case for case in REFUSALS if case.api], ids=lambda case: f"{case.who}-{case.action}")
def test_the_page_and_the_api_write_the_same_refusal(world: World, case: Refused):
    world.client(case.who).post(page_url(world, case.page), case.data)
    method, template, body = case.api
    api = APIClient()
    api.force_authenticate(world.users[case.who])
    if body is not None:
        body = {key: world.team_a.pk if v == "{team_a}" else v for key, v in body.items()}
    response = getattr(api, method)(api_url(world, template), body, format="json")
    assert (response.status_code, response.json()["message"]) == (403, case.message)
    by_page, by_api = refusals()
    assert what_it_says(by_page) == what_it_says(by_api)


@pytest.mark.parametrize("page, data", [
    (("team", "team_a.pk"), {"operator_max_kib": "2G"}),
    (("team-add-member", "team_a.pk"), {"username": "root", "role": "viewer"}),
    (("team-member-role", "team_a.pk", "memberships.viewer.pk"), {"role": "admin"}),
    (("team-member-remove", "team_a.pk", "memberships.viewer.pk"), {}),
])
def test_an_outsider_still_gets_404_and_learns_nothing(world: World, page: tuple, data: dict):
    # The outsider administers team B: not a reason to see team A. As with the API, a 404 is not audited.
    response = world.client("outsider").post(page_url(world, page), data)
    assert response.status_code == 404
    assert "manage_team" not in response.content.decode()
    assert not refusals().exists()


@pytest.mark.parametrize("page, data, action", [
    (("team", "team_a.pk"), {"operator_max_kib": "lots"}, "team.update"),
    (("team-add-member", "team_a.pk"), {"username": "", "role": "owner"}, "membership.add"),
    (("team-member-role", "team_a.pk", "memberships.viewer.pk"), {"role": "owner"}, "membership.role"),
])
def test_who_asks_is_judged_before_what_they_typed(world: World, page: tuple, data: dict, action: str):
    """An operator who types nonsense is refused (and audited) as one who types sense: they learn nothing of
    the team's page or its members from the errors."""
    response = world.client("operator").post(page_url(world, page), data)
    assert response.status_code == 403 and html.escape(NOT_A_TEAM_ADMIN) in response.content.decode()
    assert "Members" not in response.content.decode()
    assert refusals().get().action == action


def test_an_admin_who_mistypes_sees_why_and_nothing_is_refused(world: World):
    admin = world.client("admin")
    limits = admin.post(reverse("team", args=[world.team_a.pk]), {"operator_max_kib": "lots"})
    assert limits.status_code == 400 and 'class="error"' in limits.content.decode()
    role = admin.post(reverse("team-add-member", args=[world.team_a.pk]), {"username": "root", "role": "owner"})
    assert role.status_code == 400 and html.escape("'owner' is not a role: use viewer, operator or admin") in role.content.decode()
    member = admin.post(reverse("team-add-member", args=[world.team_a.pk]), {"username": "viewer", "role": "viewer"})
    assert member.status_code == 400 and "viewer is already in team A; change their role instead" in member.content.decode()
    changed = admin.post(reverse("team-member-role", args=[world.team_a.pk, world.memberships["viewer"].pk]), {"role": "owner"}, follow=True)
    assert html.escape("'owner' is not a role: use viewer, operator or admin.") in changed.content.decode()
    last = admin.post(reverse("team-member-remove", args=[world.team_a.pk, world.memberships["admin"].pk]), follow=True)
    assert "admin is the last admin of A: make someone else admin first." in last.content.decode()
    taken = world.client("superuser").post(reverse("teams"), {"name": " A "})
    assert taken.status_code == 200 and "a team named A already exists" in taken.content.decode()
    # None of these is a refusal of who asked: none is audited as one, and nothing changed.
    assert not refusals().exists()
    assert world.memberships["viewer"].role == Membership.objects.get(pk=world.memberships["viewer"].pk).role == "viewer"
    assert Team.objects.count() == 2 and world.team_a.memberships.count() == 3


def test_the_pages_still_do_what_they_did(world: World):
    admin, root = world.client("admin"), world.client("superuser")
    start = AuditEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0

    response = admin.post(reverse("team-add-member", args=[world.team_a.pk]), {"username": " root ", "role": "viewer"}, follow=True)
    assert "root joined A as viewer." in response.content.decode()
    joined = Membership.objects.get(team=world.team_a, user=world.users["superuser"])
    response = admin.post(reverse("team-member-role", args=[world.team_a.pk, joined.pk]), {"role": "operator"}, follow=True)
    assert "root is now operator in A." in response.content.decode()
    response = admin.post(reverse("team-member-remove", args=[world.team_a.pk, joined.pk]), follow=True)
    assert "root left A." in response.content.decode() and not Membership.objects.filter(pk=joined.pk).exists()
    response = admin.post(reverse("team", args=[world.team_a.pk]), {"operator_max_kib": "3G", "quota_kib": "100G"}, follow=True)
    assert "Limits of A saved." in response.content.decode()
    world.team_a.refresh_from_db()
    assert (world.team_a.operator_max_kib, world.team_a.quota_kib) == (3072 * 1024, None)  # the quota is not the admin's
    response = root.post(reverse("team", args=[world.team_a.pk]), {"operator_max_kib": "3G", "quota_kib": "100G"})
    world.team_a.refresh_from_db()
    assert response.status_code == 302 and world.team_a.quota_kib == 100 * 1024 * 1024
    response = root.post(reverse("teams"), {"name": "C"})
    team_c = Team.objects.get(name="C")
    assert response.status_code == 302 and response["Location"] == reverse("team", args=[team_c.pk])

    entries = AuditEntry.objects.filter(id__gt=start).exclude(action="auth.login").order_by("id")
    assert [(e.action, e.actor_label, e.result) for e in entries] == [
        ("membership.add", "admin", "succeeded"), ("membership.role", "admin", "succeeded"),
        ("membership.remove", "admin", "succeeded"), ("team.update", "admin", "succeeded"),
        ("team.update", "root", "succeeded"), ("team.create", "root", "succeeded"),
    ]
    assert entries[3].after == {"operator_max_kib": 3072 * 1024} and entries[4].after == {"quota_kib": 100 * 1024 * 1024}
