"""Each endpoint and action, the rules behind them (404 for outsiders, 403 for members without the right), and
every error code, against hosts and domains written straight into the database."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from balloonweb.audit.models import AuditEntry
from domains.models import Domain, Job

from .conftest import fake_domain

pytestmark = pytest.mark.django_db


def test_lists_show_only_the_callers_teams(people, fleet, as_):
    names = lambda response: sorted(item["name"] for item in response.json()["results"])  # noqa: E731
    assert names(as_("viewer").get("/api/hosts/")) == ["h1", "h2"]
    assert names(as_("viewer").get("/api/domains/")) == ["foo"]
    assert names(as_("outsider").get("/api/domains/")) == ["secret"]
    assert names(as_("root").get("/api/domains/")) == ["foo", "secret"]
    assert names(as_("viewer").get("/api/teams/")) == ["blue"]


def test_a_domain_speaks_mib(people, fleet, as_):
    data = as_("viewer").get(f"/api/domains/{fleet['foo'].pk}/").json()
    assert data["name"] == "foo" and data["host"] == "h1" and data["state"] == "running" and data["xen_state"] == "r-----"
    assert (data["memory_mib"], data["maxmem_mib"], data["floor_mib"], data["actual_mib"]) == (1024, 4096, 128, 1024)
    assert data["url"].endswith(f"/api/domains/{fleet['foo'].pk}/")
    host = as_("viewer").get(f"/api/hosts/{fleet['h1'].pk}/").json()
    assert (host["total_mib"], host["reserved_mib"], host["usable_mib"], host["running_mib"], host["running_domains"]) == (8192, 512, 7680, 1024, 1)


def test_outsiders_get_404_and_anonymous_401(people, fleet, as_, client):
    foo = fleet["foo"].pk
    for url in (f"/api/domains/{foo}/", f"/api/hosts/{fleet['h1'].pk}/"):
        response = as_("outsider").get(url)
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    response = as_("outsider").post(f"/api/domains/{foo}/resize/", {"size": "512"}, format="json")
    assert response.status_code == 404
    anonymous = client.get("/api/domains/")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "not_authenticated"
    assert anonymous["WWW-Authenticate"].startswith("Bearer")


def test_resize_answers_202_with_the_job_and_a_link(people, fleet, as_):
    response = as_("operator").post(f"/api/domains/{fleet['foo'].pk}/resize/", {"size": "512M"}, format="json")
    assert response.status_code == 202, response.json()
    job = response.json()
    assert (job["kind"], job["state"], job["parameters"], job["domain_name"], job["actor_kind"]) == ("resize", "queued", {"target_mib": 512}, "foo", "token")
    assert response["Location"] == job["url"] and job["url"].endswith(f"/api/jobs/{job['id']}/")
    assert as_("viewer").get(job["url"]).json()["id"] == job["id"]
    entry = AuditEntry.objects.filter(action="domain.resize").get()
    assert (entry.actor_kind, entry.after) == ("token", {"memory_kib": 512 * 1024})
    assert entry.actor_label.startswith("operator/operator-rw (bw_")  # which token, as names repeat


def test_sizes_take_units_and_forms(people, fleet, as_):
    foo = fleet["foo"].pk
    for size, mib in (("2G", 2048), (768, 768), ("524288K", 512)):
        response = as_("operator").post(f"/api/domains/{foo}/resize/", {"size": size}, format="json")
        assert response.status_code == 202 and response.json()["parameters"] == {"target_mib": mib}
    # A form body works too (curl -d size=600).
    assert as_("operator").post(f"/api/domains/{foo}/resize/", "size=600", content_type="application/x-www-form-urlencoded").status_code == 202


def error(response) -> tuple[int, str, str]:
    data = response.json()
    assert set(data) >= {"code", "message"}, data
    return response.status_code, data["code"], data["message"]


def test_every_refusal_is_json_with_a_code(people, fleet, as_):
    foo, h1 = fleet["foo"], fleet["h1"]
    operator, viewer = as_("operator"), as_("viewer")
    resize = f"/api/domains/{foo.pk}/resize/"

    status, code, message = error(operator.post(resize, {"size": "5000"}, format="json"))
    assert (status, code) == (400, "above_maxmem") and "maxmem of foo (4,096 MiB)" in message

    status, code, message = error(operator.post(resize, {"size": "lots"}, format="json"))
    assert (status, code) == (400, "bad_size") and "512M, 4G, 524288K" in message

    status, code, message = error(operator.post(resize, {"size": "64"}, format="json"))
    assert (status, code) == (400, "below_floor") and "floor of foo (128 MiB)" in message

    status, code, message = error(operator.post(resize, {}, format="json"))
    assert (status, code) == (400, "invalid") and message.startswith("size:")

    assert error(viewer.post(resize, {"size": "512"}, format="json"))[:2] == (403, "forbidden")
    assert error(operator.post(f"/api/domains/{foo.pk}/maxmem/", {"size": "8G"}, format="json"))[:2] == (403, "forbidden")
    assert error(as_("viewer", write=False).post(resize, {"size": "512"}, format="json"))[:2] == (403, "read_only_token")

    status, code, message = error(operator.post(resize, {"size": "7800"}, format="json"))
    assert (status, code) == (400, "above_maxmem")
    fake_domain(h1, "big", 6000, 8192)
    status, code, message = error(operator.post(resize, {"size": "3000"}, format="json"))
    assert (status, code) == (409, "no_room") and "h1 has no room" in message

    stopped = fake_domain(fleet["h2"], "stopped", state="shutoff")
    assert error(operator.post(f"/api/domains/{stopped.pk}/resize/", {"size": "512"}, format="json"))[:2] == (400, "domain_not_running")

    h1.status, h1.last_error = "offline", "Cannot recv data: Connection reset by peer"
    h1.save()
    status, code, message = error(operator.post(resize, {"size": "512"}, format="json"))
    assert (status, code) == (503, "host_unreachable") and "h1 is offline" in message

    assert error(operator.get("/api/domains/999999/"))[:2] == (404, "not_found")
    assert error(operator.get("/api/domains/?cursor=nonsense"))[:2] == (400, "invalid")
    assert error(operator.get("/api/domains/?host_id=-5"))[:2] == (400, "invalid")
    assert error(operator.get("/api/domains/?state=asleep"))[:2] == (400, "invalid")
    assert error(operator.get("/api/jobs/1/?wait=nan"))[0] in (400, 404)


def test_one_operation_at_a_time_is_a_409(people, fleet, as_):
    foo, operator = fleet["foo"].pk, as_("operator")
    job = Job.objects.create(kind="resize", domain=fleet["foo"], host=fleet["h1"], state="running", params={"target_kib": 1024 * 1024})
    assert error(operator.post(f"/api/jobs/{job.pk}/cancel/"))[:2] == (409, "not_cancellable")
    status, code, message = error(operator.post(f"/api/domains/{foo}/migrate/", {"host": "h2"}, format="json"))
    assert (status, code) == (409, "busy") and f"job {job.pk} (resize) is running" in message
    # A later absolute size supersedes a pending one: resizes queue.
    assert operator.post(f"/api/domains/{foo}/resize/", {"size": "900"}, format="json").status_code == 202
    Job.objects.filter(pk=job.pk).update(state="succeeded")
    Job.objects.filter(kind="resize").update(state="succeeded")
    moving = operator.post(f"/api/domains/{foo}/migrate/", {"host": "h2"}, format="json").json()
    status, code, message = error(operator.post(f"/api/domains/{foo}/resize/", {"size": "900"}, format="json"))
    assert (status, code) == (409, "busy") and f"job {moving['id']} (migrate) is queued; wait for it to end, or cancel it" in message


def test_maxmem_floor_and_migrate(people, fleet, as_):
    foo = fleet["foo"].pk
    admin = as_("admin")
    response = admin.post(f"/api/domains/{foo}/maxmem/", {"size": "6G"}, format="json")
    assert response.status_code == 202 and response.json()["parameters"] == {"maxmem_mib": 6144}
    response = admin.post(f"/api/domains/{foo}/floor/", {"size": "256"}, format="json")
    assert response.status_code == 200 and response.json()["floor_mib"] == 256
    assert error(admin.post(f"/api/domains/{foo}/floor/", {"size": "5G"}, format="json"))[:2] == (400, "above_maxmem")
    assert error(as_("operator").post(f"/api/domains/{foo}/floor/", {"size": "200"}, format="json"))[:2] == (403, "forbidden")

    operator = as_("operator")
    response = operator.post(f"/api/domains/{foo}/migrate/", {"host": "h2"}, format="json")
    assert response.status_code == 202 and response.json()["target_host"] == "h2"
    assert error(operator.post(f"/api/domains/{foo}/migrate/", {"host": "h1"}, format="json"))[:2] == (400, "same_host")
    # Someone else's host is not there at all.
    assert error(operator.post(f"/api/domains/{foo}/migrate/", {"host": "r1"}, format="json"))[:2] == (404, "not_found")


def test_create_from_a_xen_config(people, fleet, as_):
    config = 'name = "bar"\nmemory = 1024\nmaxmem = 2048\nvcpus = 2\n'
    response = as_("admin").post("/api/domains/", {"host": "h2", "config": config}, format="json")
    assert response.status_code == 202
    assert response.json()["parameters"] == {"name": "bar", "memory_mib": 1024, "maxmem_mib": 2048, "vcpus": 2, "uuid": None, "description": ""}
    assert error(as_("admin").post("/api/domains/", {"host": "h2", "config": "memory = 1"}, format="json"))[:2] == (400, "bad_config")
    assert error(as_("admin").post("/api/domains/", {"host": "h1", "config": 'name="foo"\nmemory=1'}, format="json"))[:2] == (409, "name_taken")
    assert error(as_("operator").post("/api/domains/", {"host": "h2", "config": config}, format="json"))[:2] == (403, "forbidden")


def test_cancel_a_queued_job(people, fleet, as_):
    job = as_("operator").post(f"/api/domains/{fleet['foo'].pk}/resize/", {"size": "512"}, format="json").json()
    assert error(as_("viewer").post(f"/api/jobs/{job['id']}/cancel/"))[:2] == (403, "forbidden")
    response = as_("operator").post(f"/api/jobs/{job['id']}/cancel/")
    assert response.status_code == 200 and response.json()["state"] == "cancelled" and response.json()["finished_ok"] is False


def test_stop_a_running_migration(people, fleet, as_):
    moving = Job.objects.create(kind="migrate", domain=fleet["foo"], host=fleet["h1"], target_host=fleet["h2"], state="running")
    response = as_("operator").post(f"/api/jobs/{moving.pk}/cancel/")
    # Asked, not done: the worker running it aborts the move, and the job then ends cancelled.
    assert response.status_code == 200 and response.json()["state"] == "running"
    who = response.json()["stop_requested_by"]
    assert who.startswith("token:operator/operator-rw (bw_")
    status, code, message = error(as_("admin").post(f"/api/jobs/{moving.pk}/cancel/"))
    assert (status, code, message) == (409, "not_cancellable", f"job {moving.pk} is already stopping, as {who} asked")


def test_filters(people, fleet, as_):
    fake_domain(fleet["h2"], "web1")
    fake_domain(fleet["h2"], "old", state="gone")
    root = as_("root")
    names = lambda url: sorted(d["name"] for d in root.get(url).json()["results"])  # noqa: E731
    assert names("/api/domains/?host=h2") == ["web1"]
    assert names("/api/domains/?state=gone") == ["old"]
    assert names("/api/domains/?name_contains=EB") == ["web1"]
    assert names(f"/api/domains/?team={fleet['r1'].team_id}") == ["secret"]
    assert names("/api/hosts/?status=online") == ["h1", "h2", "r1"]
    root.post(f"/api/domains/{fleet['foo'].pk}/resize/", {"size": "512"}, format="json")
    assert [j["kind"] for j in root.get("/api/jobs/?kind=resize&state=queued").json()["results"]] == ["resize"]
    assert root.get("/api/jobs/?kind=migrate").json()["results"] == []
    assert [e["action"] for e in root.get("/api/audit/?action=domain.resize").json()["results"]] == ["domain.resize"]


@pytest.mark.parametrize("url", [
    "/api/jobs/?created_after=9999-12-31T23:59:59-10:00", "/api/audit/?since=0001-01-01T00:00:00%2B10:00",
    "/api/audit/?until=9999-12-31T23:59:59-10:00",
])
def test_a_date_that_leaves_the_calendar_in_utc_is_refused_with_the_range_allowed(people, fleet, as_, url):
    answer = as_("root").get(url)
    assert answer.status_code == 400 and "out of range: give a date and time between the years 1 and 9999 in UTC" in answer.json()["message"]


@pytest.mark.parametrize("query", ["team=²", "host=٣", "domain=99999999999999999999999", "until=9999-12-31T23:59:59-10:00"])
def test_the_audit_page_takes_odd_filters_without_an_error_page(people, fleet, query):
    from django.test import Client

    client = Client()
    client.force_login(people["admin"])
    page = client.get(f"/audit/?{query}")
    export = client.get(f"/audit/export.csv?{query}")
    if query.startswith("until"):
        assert "out of range: give a date and time between the years 1 and 9999 in UTC" in page.content.decode()
        assert export.status_code == 400 and "nothing exported, the filter is not valid: until: " in export.content.decode()
    else:  # no such object: no entries, and no error
        assert "No entries" in page.content.decode()
        assert b"".join(export.streaming_content).decode().count("\n") == 1  # the header alone


def test_pages_of_100_with_a_next_link_and_constant_queries(people, fleet, as_):
    h2 = fleet["h2"]
    Domain.objects.bulk_create([_row(h2, i) for i in range(250)])
    client = as_("viewer")
    client.get("/api/domains/")  # the token's first use is audited once; measure the steady state
    counts, seen, url = [], [], "/api/domains/"
    while url:
        with CaptureQueriesContext(connection) as queries:
            page = client.get(url).json()
        counts.append(len(queries))
        seen += [d["name"] for d in page["results"]]
        url = page["next"]
    assert len(seen) == 251 and len(set(seen)) == 251
    assert counts == [counts[0]] * len(counts) and counts[0] <= 4, counts


def _row(host, i: int) -> Domain:
    import uuid

    return Domain(host=host, name=f"d{i:03}", uuid=uuid.uuid4(), state="running", memory_kib=1024, maxmem_kib=2048)


def test_audit_entries_are_for_team_admins(people, fleet, as_):
    as_("operator").post(f"/api/domains/{fleet['foo'].pk}/resize/", {"size": "512"}, format="json")
    admin_sees = [e["action"] for e in as_("admin").get("/api/audit/").json()["results"]]
    assert "domain.resize" in admin_sees
    assert as_("viewer").get("/api/audit/").json()["results"] == []
    assert "domain.resize" not in [e["action"] for e in as_("outsider").get("/api/audit/").json()["results"]]


def test_the_audit_filters_find_a_persons_token_actions_and_bound_times_by_id(people, fleet, as_):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    as_("operator").post(f"/api/domains/{fleet['foo'].pk}/resize/", {"size": "512"}, format="json")
    by_name = as_("admin").get("/api/audit/", {"actor": "operator", "action": "domain.resize"}).json()["results"]
    assert len(by_name) == 1 and by_name[0]["actor_label"].startswith("operator/operator-rw (bw_")
    entry = AuditEntry.objects.get(action="domain.resize")
    moment = entry.at.isoformat()
    admin = as_("admin")
    with CaptureQueriesContext(connection) as queries:
        until = admin.get("/api/audit/", {"until": moment, "action": "domain.resize"}).json()["results"]
    assert [e["id"] for e in until] == [entry.pk]  # at or before: the entry at that very instant is in
    listing = [q["sql"] for q in queries.captured_queries if '"at" <=' in q["sql"] and "LIMIT 101" in q["sql"]]
    assert listing and all('"id" <= (SELECT' in sql for sql in listing), queries.captured_queries
    assert admin.get("/api/audit/", {"since": moment, "action": "domain.resize"}).json()["results"][0]["id"] == entry.pk


def test_teams_and_memberships(people, team, as_):
    admin, root = as_("admin"), as_("root")
    assert error(admin.post("/api/teams/", {"name": "green"}, format="json"))[:2] == (403, "forbidden")
    green = root.post("/api/teams/", {"name": "green", "quota_mib": 16384}, format="json")
    assert green.status_code == 201 and green.json()["quota_mib"] == 16384
    assert error(root.post("/api/teams/", {"name": "green"}, format="json"))[:2] == (409, "name_taken")

    response = admin.patch(f"/api/teams/{team.pk}/", {"operator_max_mib": 2048}, format="json")
    assert response.status_code == 200 and response.json()["operator_max_mib"] == 2048
    assert error(as_("operator").patch(f"/api/teams/{team.pk}/", {"quota_mib": 1}, format="json"))[:2] == (403, "forbidden")
    assert error(as_("outsider").patch(f"/api/teams/{team.pk}/", {"quota_mib": 1}, format="json"))[:2] == (404, "not_found")

    added = admin.post("/api/memberships/", {"team": team.pk, "username": "outsider", "role": "viewer"}, format="json")
    assert added.status_code == 201, added.json()
    assert (added.json()["user"], added.json()["role"]) == ("outsider", "viewer")
    assert error(admin.post("/api/memberships/", {"team": team.pk, "username": "outsider", "role": "viewer"}, format="json"))[:2] == (409, "already_member")
    assert error(as_("operator").post("/api/memberships/", {"team": team.pk, "username": "root", "role": "admin"}, format="json"))[:2] == (403, "forbidden")
    assert error(admin.post("/api/memberships/", {"team": 999999, "username": "root", "role": "admin"}, format="json"))[:2] == (404, "not_found")
    membership = added.json()["id"]
    assert admin.patch(f"/api/memberships/{membership}/", {"role": "operator"}, format="json").json()["role"] == "operator"
    assert admin.delete(f"/api/memberships/{membership}/").status_code == 204
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"team.create", "team.update", "membership.add", "membership.role", "membership.remove"} <= actions
    assert root.delete(f"/api/teams/{green.json()['id']}/").status_code == 204


def test_the_api_keeps_the_pages_team_rules(people, team, as_):
    # The quota is the fleet owner's grant: a team admin sets the operator limit but not the quota.
    status, code, message = error(as_("admin").patch(f"/api/teams/{team.pk}/", {"quota_mib": 999999}, format="json"))[:3]
    assert (status, code) == (403, "forbidden") and "only a superuser changes the quota" in message
    team.refresh_from_db()
    assert team.quota_kib != 999999 * 1024
    # A team keeps an admin: its last one can neither step down nor leave.
    last_admin = team.memberships.get(user=people["admin"])
    status, code, message = error(as_("admin").patch(f"/api/memberships/{last_admin.pk}/", {"role": "viewer"}, format="json"))[:3]
    assert (status, code) == (409, "last_admin") and "last admin" in message
    assert error(as_("admin").delete(f"/api/memberships/{last_admin.pk}/"))[:2] == (409, "last_admin")
    last_admin.refresh_from_db()
    assert last_admin.role == "admin"
    # With a second admin, the first may step down.
    other = team.memberships.get(user=people["operator"])
    assert as_("admin").patch(f"/api/memberships/{other.pk}/", {"role": "admin"}, format="json").status_code == 200
    assert as_("admin").patch(f"/api/memberships/{last_admin.pk}/", {"role": "viewer"}, format="json").json()["role"] == "viewer"


def test_a_team_with_hosts_is_not_deleted(people, fleet, as_):
    assert error(as_("root").delete(f"/api/teams/{fleet['h1'].team_id}/"))[:2] == (409, "team_has_hosts")


def test_the_schema_and_its_docs_page(client):
    schema = client.get("/api/schema/?format=json").json()
    assert schema["openapi"].startswith("3.") and "/api/domains/{id}/resize/" in schema["paths"]
    resize = schema["paths"]["/api/domains/{id}/resize/"]["post"]
    assert {"202", "400", "403", "404", "409", "503"} <= set(resize["responses"])
    assert "/api/schema/" not in schema["paths"] and "bearerToken" in schema["components"]["securitySchemes"]
    docs = client.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in docs and "/api/schema/" in docs


def test_an_empty_patch_changes_nothing(people, team, as_):
    membership = team.memberships.get(user=people["viewer"])
    response = as_("admin").patch(f"/api/memberships/{membership.pk}/", {}, format="json")
    assert response.status_code == 200 and response.json()["role"] == "viewer"
    assert as_("admin").patch(f"/api/teams/{team.pk}/", {}, format="json").status_code == 200


def test_a_field_a_request_does_not_take_is_refused_not_ignored(people, fleet, as_):
    """`reserve` for `reserved` (the CLI's option name) answered 200 and changed nothing."""
    h1 = fleet["h1"]
    before = type(h1).objects.get(pk=h1.pk).reserved_kib
    status, code, message = error(as_("admin").patch(f"/api/hosts/{h1.pk}/", {"reserve": "1G"}, format="json"))
    assert (status, code) == (400, "invalid")
    assert message == "reserve: not a field of this request; it takes team, reserved, capacity, queue_group"
    assert type(h1).objects.get(pk=h1.pk).reserved_kib == before
    assert as_("admin").patch(f"/api/hosts/{h1.pk}/", {"reserved": "1G"}, format="json").json()["reserved_mib"] == 1024


def test_an_empty_state_filter_filters_nothing_and_leaves_gone_domains_out(people, fleet, as_):
    from domains.models import Domain

    Domain.objects.filter(pk=fleet["foo"].pk).update(state=Domain.State.GONE)
    listed = [d["name"] for d in as_("admin").get("/api/domains/?state=").json()["results"]]
    assert "foo" not in listed
    assert "foo" in [d["name"] for d in as_("admin").get("/api/domains/?state=gone").json()["results"]]
