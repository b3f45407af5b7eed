"""The pages with Django's test client: who may see what, the controls' answers, and the custom error pages."""

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from domains import urls as page_urls
from domains.autoscaler.models import Decision
from domains.models import Domain, Job
from hosts.models import Host

from .conftest import GIB, make_fleet

HTMX = {"HTTP_HX_REQUEST": "true"}


# The console's routes that only take a POST (a form's action).
POST_ONLY = {"domain-resize", "domain-maxmem", "domain-floor", "domain-migrate", "domain-power", "job-cancel", "host-maintenance-start",
             "host-maintenance-end", "host-settings", "host-remove"}


def page_routes(ids: dict) -> list[tuple[str, str]]:
    """Every route of the console (domains/urls.py), as (name, url), with the ids of existing objects."""
    kwargs = {"host_id": ids["host"], "domain_id": ids["domain"], "job_id": ids["job"], "part": "history"}
    routes = []
    for pattern in page_urls.urlpatterns:
        names = pattern.pattern.converters.keys()
        routes.append((pattern.name, reverse(pattern.name, kwargs={k: kwargs[k] for k in names})))
    return routes


@pytest.fixture
def ids(small_fleet) -> dict:
    foo = small_fleet["foo"]
    job = Job.objects.create(kind=Job.Kind.RESIZE, domain=foo, host=foo.host, params={"target_kib": GIB}, actor_kind="cli", actor_label="command line")
    return {"host": foo.host_id, "domain": foo.pk, "job": job.pk}


def test_every_page_refuses_anonymous_users(client, ids):
    routes = page_routes(ids) + [("password_change", reverse("password_change"))]
    assert len(routes) >= 12
    for name, url in routes:
        for method in (client.get, client.post):
            response = method(url)
            assert response.status_code == 302, (name, method)
            assert response.url.startswith(reverse("login") + "?next="), name


def test_login_page_and_logging_in(client, people):
    page = client.get(reverse("login"))
    assert page.status_code == 200 and b"Log in" in page.content
    refused = client.post(reverse("login"), {"username": "blue-viewer", "password": "wrong"})
    assert refused.status_code == 200 and b'id="login-error"' in refused.content
    accepted = client.post(reverse("login"), {"username": "blue-viewer", "password": "correct horse battery"})
    assert accepted.status_code == 302 and accepted.url == reverse("fleet")


def test_logout_is_a_post(client, people):
    client.force_login(people["viewer"])
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert client.get(reverse("fleet")).status_code == 302


def test_changing_the_password(client, people):
    client.force_login(people["viewer"])
    assert b"Change password" in client.get(reverse("password_change")).content
    weak = client.post(reverse("password_change"), {"old_password": "correct horse battery", "new_password1": "123", "new_password2": "123"})
    assert weak.status_code == 200 and b"This password is too short" in weak.content
    changed = client.post(
        reverse("password_change"),
        {"old_password": "correct horse battery", "new_password1": "a much longer passphrase", "new_password2": "a much longer passphrase"},
    )
    assert changed.status_code == 302 and changed.url == reverse("password_change_done")
    people["viewer"].refresh_from_db()
    assert people["viewer"].check_password("a much longer passphrase")


def test_a_superuser_sees_every_page(admin_client, ids):
    for name, url in page_routes(ids):
        if name in POST_ONLY:
            continue
        response = admin_client.get(url)
        assert response.status_code == 200, name
        body = b"".join(response.streaming_content) if response.streaming else response.content
        assert b"{#" not in body and b"{%" not in body, f"template syntax shows on {name}"


def test_no_page_answers_500_to_a_query_it_does_not_expect(admin_client, ids):
    """Every filter, sort and pager parameter the pages read, with values they do not expect (NUL characters,
    which PostgreSQL refuses in a string, an oversized host name, a negative page): never a server error."""
    weird = {"sort": "x\x00", "dir": "sideways", "page": "-1", "name": "a\x00b", "host": "h" * 300, "state": "\x00",
             "status": "?", "order": "free'", "domain": "d\x00", "evacuation": "1", "range": "-5"}
    for name, url in page_routes(ids):
        if name not in POST_ONLY:
            assert admin_client.get(url, weird).status_code < 500, name


def test_the_fleet_page_shows_hosts_bars_and_totals(admin_client, small_fleet):
    html = admin_client.get(reverse("fleet")).content.decode()
    assert "host0000" in html and "host0001" in html
    # foo runs with 1,024 MiB on host0000 (64 GiB, 1 GiB reserved).
    assert "1,024 MiB running" in html and "1,024 MiB reserved" in html and "64,512 MiB free" in html
    assert "2 of 2 hosts online" in html and "1 of 1 domain running" in html


def test_the_host_page_shows_its_bar_as_the_fleet_card_does(admin_client, small_fleet):
    html = admin_client.get(reverse("host", args=[small_fleet["hv1"].pk])).content.decode()
    assert "1,024 MiB running" in html and "1,024 MiB reserved" in html and "63,488 MiB free" in html


def test_an_overbooked_host_says_so_in_words_not_only_in_red(admin_client, small_fleet):
    """Running domains above what the host hands out (its capacity lowered since): "0 MiB free" hid by how much."""
    Domain.objects.filter(pk=small_fleet["foo"].pk).update(memory_kib=64 * GIB)
    html = admin_client.get(reverse("host", args=[small_fleet["hv1"].pk])).content.decode()
    assert "overbooked by 1,024 MiB" in html and "0 MiB free" not in html


def test_the_fleet_page_points_to_the_steps_waiting_for_a_person(admin_client, small_fleet):
    """Recommend mode: a person must know which host page has steps to approve."""
    foo, hv1 = small_fleet["foo"], small_fleet["hv1"]
    for to_mib in (512, 768):
        Decision.objects.create(at=timezone.now(), kind=Decision.Kind.STEP, code="shrink", host=hv1, domain=foo,
                                step_kind="resize", from_kib=GIB, to_kib=to_mib * 1024, reason="r", mode="recommend",
                                state=Decision.State.RECOMMENDED)
    Decision.objects.create(at=timezone.now(), kind=Decision.Kind.STEP, code="shrink", host=small_fleet["hv2"],
                            domain=foo, step_kind="resize", from_kib=GIB, to_kib=GIB // 2, reason="r", mode="recommend",
                            state=Decision.State.DISMISSED)
    html = admin_client.get(reverse("fleet")).content.decode()
    assert f'<a href="/hosts/{hv1.pk}/#autoscaler">2 autoscaler steps waiting for approval</a>' in html
    assert html.count("waiting for approval") == 1  # hv2's step was dismissed


def test_the_fleet_shows_an_offline_host_with_its_error(admin_client, small_fleet):
    hv2 = small_fleet["hv2"]
    hv2.status, hv2.last_error = "offline", "host unreachable: cannot connect to the libvirt socket"
    hv2.save()
    html = admin_client.get(reverse("fleet")).content.decode()
    assert "Offline" in html and "cannot connect to the libvirt socket" in html


def test_outsiders_get_404_and_members_see_their_team(client, people, ids):
    client.force_login(people["outsider"])
    for name, url in page_routes(ids):
        if name in {"fleet", "domains", "domains-csv", "jobs"}:  # lists: an outsider sees its own team's rows (below)
            continue
        if name == "host-add":  # the fleet owner's: no team's admin may
            assert client.get(url).status_code == 403
            continue
        method = client.post if name in POST_ONLY else client.get
        assert method(url).status_code == 404, name
    assert b"host0000" not in client.get(reverse("fleet")).content
    assert b"foo" not in client.get(reverse("jobs")).content
    assert b"foo" not in client.get(reverse("domains")).content
    client.force_login(people["viewer"])
    assert b"host0000" in client.get(reverse("fleet")).content
    assert client.get(reverse("domain", args=[ids["domain"]])).status_code == 200


def test_a_viewer_sees_the_controls_disabled_and_gets_403(client, people, small_fleet):
    foo = small_fleet["foo"]
    client.force_login(people["viewer"])
    html = client.get(reverse("domain", args=[foo.pk])).content.decode()
    assert "Your role does not allow resizing this domain." in html and 'id="resize-memory"' not in html
    response = client.post(reverse("domain-resize", args=[foo.pk]), {"memory": "512"}, **HTMX)
    assert response.status_code == 403
    assert b"does not allow &#x27;resize&#x27;" in response.content
    assert not Job.objects.exists()


def test_resize_through_the_control(client, people, small_fleet):
    foo = small_fleet["foo"]
    client.force_login(people["operator"])
    response = client.post(reverse("domain-resize", args=[foo.pk]), {"memory": "512"}, **HTMX)
    assert response.status_code == 200, response.content
    job = Job.objects.get()
    assert (job.kind, job.params, job.actor_label) == ("resize", {"target_kib": 512 * 1024}, "blue-operator")
    assert f"Job {job.pk} queued: balloon foo to 512 MiB.".encode() in response.content


@pytest.mark.parametrize(
    "typed, status, message",
    [
        ("5000", 400, "5,000 MiB is above the maxmem of foo (4,096 MiB); raise maxmem first"),
        ("64", 400, "64 MiB is below the floor of foo (128 MiB); allowed: 128 MiB to 4,096 MiB"),
        ("lots", 400, "&#x27;lots&#x27; is not a memory size"),
        ("", 400, "Enter a size, e.g. 512 (MiB) or 2G."),
        ("9" * 30, 400, "Ensure this value has at most 20 characters"),
    ],
)
def test_bad_sizes_are_refused_next_to_the_control(client, people, small_fleet, typed, status, message):
    foo = small_fleet["foo"]
    client.force_login(people["operator"])
    response = client.post(reverse("domain-resize", args=[foo.pk]), {"memory": typed}, **HTMX)
    assert response.status_code == status
    html = response.content.decode()
    assert 'id="resize-error"' in html and message in html, html
    assert 'aria-invalid="true"' in html
    assert not Job.objects.exists()


def test_without_javascript_a_refusal_renders_the_whole_page(client, people, small_fleet):
    foo = small_fleet["foo"]
    client.force_login(people["operator"])
    response = client.post(reverse("domain-resize", args=[foo.pk]), {"memory": "5000"})
    assert response.status_code == 400
    assert b"<title>foo" in response.content and b"above the maxmem of foo (4,096 MiB)" in response.content
    accepted = client.post(reverse("domain-resize", args=[foo.pk]), {"memory": "2G"})
    assert accepted.status_code == 302 and accepted.url == reverse("domain", args=[foo.pk])


def test_maxmem_floor_and_migrate_controls(client, people, small_fleet):
    foo, hv2 = small_fleet["foo"], small_fleet["hv2"]
    client.force_login(people["admin"])
    maxmem = client.post(reverse("domain-maxmem", args=[foo.pk]), {"memory": "8G"}, **HTMX)
    assert maxmem.status_code == 200 and b"maxmem 8,192 MiB in the config; foo takes it at its next boot" in maxmem.content
    floor = client.post(reverse("domain-floor", args=[foo.pk]), {"memory": "256"}, **HTMX)
    assert floor.status_code == 200 and b"Floor set to 256 MiB." in floor.content
    foo.refresh_from_db()
    assert foo.floor_kib == 256 * 1024
    page = client.get(reverse("domain", args=[foo.pk])).content.decode()
    assert f'<option value="{hv2.pk}" >host0001 — 64,512 MiB free</option>' in page
    moved = client.post(reverse("domain-migrate", args=[foo.pk]), {"target": hv2.pk}, **HTMX)
    assert moved.status_code == 200 and b"queued: migrate foo to host0001" in moved.content
    same = client.post(reverse("domain-migrate", args=[foo.pk]), {"target": foo.host_id}, **HTMX)
    assert same.status_code == 400 and b"foo already runs on host0000; pick another host" in same.content
    nowhere = client.post(reverse("domain-migrate", args=[foo.pk]), {"target": "x"}, **HTMX)
    assert nowhere.status_code == 400 and b"Pick a host from the list." in nowhere.content


def test_the_migrate_list_offers_the_host_with_the_most_room_first(admin_client, team):
    import re

    from domains.models import Domain

    source, small, large, full = make_fleet(4, 0, team)
    Host.objects.filter(pk=small.pk).update(capacity_kib=8 * GIB)
    Host.objects.filter(pk=full.pk).update(capacity_kib=2 * GIB)
    foo = Domain.objects.create(host=source, name="foo", uuid="00000000-0000-0000-0000-000000000001", state="running",
                                memory_kib=4 * GIB, maxmem_kib=4 * GIB, config_memory_kib=4 * GIB, config_maxmem_kib=4 * GIB)
    page = admin_client.get(reverse("domain", args=[foo.pk])).content.decode()
    options = re.findall(r'<option value="\d+" (disabled)?>(host\d+) — ([\d,]+) MiB free', page)
    assert options == [("", large.name, "64,512"), ("", small.name, "7,168"), ("disabled", full.name, "1,024")]


def test_an_operator_may_not_set_maxmem(client, people, small_fleet):
    foo = small_fleet["foo"]
    client.force_login(people["operator"])
    assert b"Only a team admin sets maxmem." in client.get(reverse("domain", args=[foo.pk])).content
    response = client.post(reverse("domain-maxmem", args=[foo.pk]), {"memory": "8G"}, **HTMX)
    assert response.status_code == 403 and b'id="maxmem-error"' in response.content


def test_the_jobs_page_filters_and_cancels(client, people, small_fleet):
    foo = small_fleet["foo"]
    client.force_login(people["operator"])
    queued = Job.objects.create(kind="resize", domain=foo, host=foo.host, params={"target_kib": GIB}, actor_kind="cli", actor_label="cli")
    done = Job.objects.create(kind="resize", domain=foo, host=foo.host, params={"target_kib": GIB}, actor_kind="cli", actor_label="cli", state="succeeded", progress=100)
    listing = client.get(reverse("jobs"), {"state": "queued"}).content.decode()
    assert f'id="job-{queued.pk}"' in listing and f'id="job-{done.pk}"' not in listing
    assert f'id="job-{done.pk}"' in client.get(reverse("jobs"), {"domain": "foo", "host": "host0000"}).content.decode()
    assert 'id="job-' not in client.get(reverse("jobs"), {"domain": "nosuch"}).content.decode()
    cancelled = client.post(reverse("job-cancel", args=[queued.pk]), **HTMX)
    assert cancelled.status_code == 200 and b'class="job-cancelled"' in cancelled.content
    again = client.post(reverse("job-cancel", args=[done.pk]), **HTMX)
    assert again.status_code == 409 and b"only a queued job or a running migration can be cancelled" in again.content
    moving = Job.objects.create(kind="migrate", domain=foo, host=foo.host, target_host=foo.host, actor_kind="cli", actor_label="cli", state="running", progress=40)
    assert ">Stop</button>" in client.get(reverse("jobs"), {"state": "running"}).content.decode()
    # Also from the domain page, whose rows are narrower: the row comes back as narrow as it was.
    assert ">Stop</button>" in client.get(reverse("domain", args=[foo.pk])).content.decode()
    stopping = client.post(reverse("job-cancel", args=[moving.pk]), {"wide": "0"}, **HTMX).content.decode()
    assert ">stopping</span>" in stopping and "operator asked it to stop" in stopping and ">Stop</button>" not in stopping
    assert stopping.count("<td") == 9 and f'href="{reverse("domain", args=[foo.pk])}"' not in stopping


def test_the_host_page_sorts_and_paginates(admin_client, team):
    host = make_fleet(1, 250, team)[0]
    first = admin_client.get(reverse("host", args=[host.pk])).content.decode()
    assert "Page 1 of 3 (250 domains)" in first and "host0000-vm0000" in first and "host0000-vm0100" not in first
    by_time = admin_client.get(reverse("host", args=[host.pk]), {"sort": "time", "dir": "desc"}).content.decode()
    assert by_time.index("host0000-vm0249") < by_time.index("host0000-vm0248")
    assert 'href="?sort=time&amp;dir=desc&amp;page=2"' in by_time or 'href="?sort=time&dir=desc&page=2"' in by_time
    # The guest's free share: make_fleet gives vm j (j % 7) * 100 MiB unused of 97 % of 1 GiB.
    by_free = admin_client.get(reverse("host", args=[host.pk]), {"sort": "free", "dir": "desc"}).content.decode()
    assert by_free.index("host0000-vm0006") < by_free.index("host0000-vm0005") and "60 %</td>" in by_free
    partial = admin_client.get(reverse("host", args=[host.pk]), {"page": 3}, **HTMX).content.decode()
    assert "<html" not in partial and "host0000-vm0249" in partial
    bogus = admin_client.get(reverse("host", args=[host.pk]), {"sort": "nonsense", "page": "x"})
    assert bogus.status_code == 200


def domain_names(html: str) -> list[str]:
    """The domains page's rows, in order (each row's heading cell is the domain's name)."""
    import re

    return re.findall(r'<th scope="row"><a href="/domains/\d+/">([^<]+)</a></th>', html)


def test_the_domains_page_lists_every_visible_domain_and_filters_them(client, people, team, other_team):
    """`xm list` of every host one may see: a name (or part of it), a host and a state narrow it, a column sorts
    it, and sorting keeps the filters."""
    *hosts, theirs = make_fleet(3, 3, team)
    Host.objects.filter(pk=theirs.pk).update(team=other_team)
    theirs.domains.exclude(name="host0002-vm0000").delete()
    theirs.domains.update(name="secret")
    stopped = hosts[1].domains.get(name="host0001-vm0002")
    stopped.state, stopped.hv_id = "shutoff", None
    stopped.save()
    client.force_login(people["viewer"])
    url = reverse("domains")

    everything = client.get(url).content.decode()
    assert domain_names(everything) == [f"host000{h}-vm000{d}" for h in (0, 1) for d in (0, 1, 2)]
    assert "secret" not in everything and 'href="/hosts/' in everything
    assert domain_names(client.get(url, {"name": "VM0001"}).content.decode()) == ["host0000-vm0001", "host0001-vm0001"]
    assert domain_names(client.get(url, {"host": "host0001", "state": "up"}).content.decode()) == ["host0001-vm0000", "host0001-vm0001"]
    assert domain_names(client.get(url, {"state": "down"}).content.decode()) == ["host0001-vm0002"]
    assert domain_names(client.get(url, {"state": "shutoff"}).content.decode()) == ["host0001-vm0002"]
    assert "No domains match." in client.get(url, {"name": "nosuch"}).content.decode()

    by_host = client.get(url, {"name": "vm0000", "sort": "host", "dir": "desc"}).content.decode()
    assert domain_names(by_host) == ["host0001-vm0000", "host0000-vm0000"]
    assert 'href="?name=vm0000&amp;sort=memory&amp;dir=asc"' in by_host  # a column's link keeps the filter
    assert 'aria-sort="descending"' in by_host

    bad = client.get(url, {"state": "bogus", "sort": "nonsense", "page": "x"})
    assert bad.status_code == 200 and "State: Select a valid choice. bogus is not one of the available choices." in bad.content.decode()
    partial = client.get(url, {"name": "vm0002"}, **HTMX).content.decode()
    assert "<html" not in partial and domain_names(partial) == ["host0000-vm0002", "host0001-vm0002"]

    client.force_login(people["outsider"])
    assert domain_names(client.get(url).content.decode()) == ["secret"]


def host_cards(html: str) -> list[str]:
    import re

    return re.findall(r'<h2><a href="/hosts/\d+/">([^<]+)</a></h2>', html)


def test_a_large_fleet_is_shown_in_pages_that_filter_and_order_its_hosts(admin_client, team):
    """70 hosts: 60 cards a page; the totals are the whole fleet's whatever the filter; a live refetch keeps the
    filter and the page (the region asks for the page's own URL)."""
    hosts = make_fleet(70, 1, team)
    Host.objects.filter(name="host0005").update(status=Host.Status.OFFLINE)
    Host.objects.filter(name="host0007").update(maintenance=True)
    hosts[42].domains.update(memory_kib=9 * GIB)  # the fullest, so the least free
    first = admin_client.get(reverse("fleet")).content.decode()
    assert host_cards(first) == [f"host{i:04d}" for i in range(60)] and "Page 1 of 2 (70 hosts)" in first
    assert "69 of 70 hosts online" in first and "79,872 MiB running" in first  # 69 hosts with 1 GiB running, one with 9 GiB
    # host0005 (offline) and host0007 (in maintenance) have 62 GiB free each, which no domain can use now.
    assert "126,976 MiB of the free memory is on hosts that take no domains now (offline or in maintenance)." in first
    second = admin_client.get(reverse("fleet"), {"page": 2}).content.decode()
    assert host_cards(second) == [f"host{i:04d}" for i in range(60, 70)]

    assert host_cards(admin_client.get(reverse("fleet"), {"name": "HOST006"}).content.decode()) == [f"host006{i}" for i in range(10)]
    offline = admin_client.get(reverse("fleet"), {"status": "not-online"}).content.decode()
    assert host_cards(offline) == ["host0005"] and "1 of 70 hosts match." in offline and "69 of 70 hosts online" in offline
    assert host_cards(admin_client.get(reverse("fleet"), {"status": "maintenance"}).content.decode()) == ["host0007"]
    assert "No hosts match." in admin_client.get(reverse("fleet"), {"name": "nosuch"}).content.decode()
    assert host_cards(admin_client.get(reverse("fleet"), {"order": "used"}).content.decode())[0] == "host0042"
    assert host_cards(admin_client.get(reverse("fleet"), {"order": "free"}).content.decode())[-1] != "host0042"
    by_free = admin_client.get(reverse("fleet"), {"order": "free", "page": 2}).content.decode()
    assert host_cards(by_free)[-1] == "host0042" and 'href="?order=free&amp;page=1"' in by_free

    bad = admin_client.get(reverse("fleet"), {"status": "sideways"})
    assert bad.status_code == 200 and "Status: Select a valid choice. sideways is not one of the available choices." in bad.content.decode()
    partial = admin_client.get(reverse("fleet"), {"name": "host0001"}, **HTMX).content.decode()
    assert "<html" not in partial and host_cards(partial) == ["host0001"] and 'id="host-filter" hx-preserve="true"' in partial


def test_a_small_fleet_needs_no_host_filter(admin_client, small_fleet):
    assert 'id="host-filter"' not in admin_client.get(reverse("fleet")).content.decode()


def test_the_domains_view_downloads_as_csv_with_its_filter_and_order(client, people, team, other_team):
    import csv
    import io

    *hosts, theirs = make_fleet(3, 3, team)
    Host.objects.filter(pk=theirs.pk).update(team=other_team)
    client.force_login(people["viewer"])
    page = client.get(reverse("domains"), {"name": "vm000", "sort": "free", "dir": "desc"}).content.decode()
    assert 'href="/domains/export.csv?name=vm000&amp;sort=free&amp;dir=desc">Download CSV of this view</a>' in page
    response = client.get(reverse("domains-csv"), {"name": "vm000", "sort": "free", "dir": "desc"})
    assert response["Content-Type"] == "text/csv" and 'filename="domains.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["name"] for r in rows] == ["host0000-vm0002", "host0001-vm0002", "host0000-vm0001", "host0001-vm0001",
                                         "host0000-vm0000", "host0001-vm0000"]  # most free first; theirs left out
    assert rows[0]["host"] == "host0000" and rows[0]["memory_mib"] == "1024" and rows[0]["free_percent"] == "20.1"
    assert rows[-1]["unused_mib"] == "0" and rows[-1]["state"] == "running"


def test_the_fleet_page_finds_a_domain_by_name(admin_client, small_fleet):
    html = admin_client.get(reverse("fleet")).content.decode()
    assert 'action="/domains/" role="search"' in html and 'name="name"' in html
    assert '<a href="/domains/">1 of 1 domain running</a>' in html


@pytest.mark.parametrize("make_url", [
    lambda ids: reverse("fleet"), lambda ids: reverse("host", args=[ids[0]]), lambda ids: reverse("domains"),
])
def test_fleet_host_and_domains_pages_run_a_constant_number_of_queries(admin_client, team, make_url):
    """The same number of queries for 20 domains on 2 hosts as for 2,000 domains on 40 hosts. (No absolute
    cap: other parts of the page, such as the audit history beside it, bring their own constant queries.)"""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for hosts, per_host in ((2, 10), (40, 50)):
        made = make_fleet(hosts, per_host, team)
        url = make_url([h.pk for h in made])
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(url).status_code == 200
        counts.append(len(queries))
        Host.objects.all().delete()
    assert counts[0] == counts[1], counts


@override_settings(DEBUG=False)
def test_error_pages_are_the_consoles(client, people, small_fleet):
    client.force_login(people["outsider"])
    missing = client.get(reverse("domain", args=[small_fleet["foo"].pk]))
    assert missing.status_code == 404 and b"404 \xc2\xb7 Not found" in missing.content and b"BalloonWeb" in missing.content
    client.force_login(people["viewer"])
    forbidden = client.post(reverse("job-cancel", args=[999999]))
    assert forbidden.status_code == 404


@override_settings(DEBUG=False)
def test_the_500_page_renders_without_a_request_context():
    from django.template import loader

    html = loader.get_template("500.html").render()
    assert "500 · Something went wrong on our side" in html and "console.css" in html


def test_cancel_and_stop_are_offered_only_to_those_who_may_use_them(client, people, small_fleet):
    foo = small_fleet["foo"]
    queued = Job.objects.create(kind="resize", domain=foo, host=foo.host, params={"target_kib": GIB}, actor_kind="cli", actor_label="cli")
    client.force_login(people["viewer"])
    for page in (reverse("jobs"), reverse("domain", args=[foo.pk])):
        html = client.get(page).content.decode()
        assert f'id="job-{queued.pk}"' in html and ">Cancel</button>" not in html
    client.force_login(people["operator"])
    assert f'aria-label="Cancel job {queued.pk}">Cancel</button>' in client.get(reverse("jobs")).content.decode()


def test_without_javascript_a_control_and_a_cancel_say_what_they_did(client, people, small_fleet):
    foo = small_fleet["foo"]
    client.force_login(people["operator"])
    page = client.post(reverse("domain-resize", args=[foo.pk]), {"memory": "2G"}, follow=True).content.decode()
    job = Job.objects.get()
    assert f"Job {job.pk} queued: balloon foo to 2,048 MiB." in page
    back = client.post(reverse("job-cancel", args=[job.pk]), {"wide": "0"}, follow=True)
    assert back.redirect_chain[-1][0] == reverse("domain", args=[foo.pk])
    assert f"Job {job.pk} cancelled." in back.content.decode()


def test_a_refused_migration_keeps_the_host_that_was_picked(client, people, team):
    source, first, second = make_fleet(3, 0, team)
    foo = Domain.objects.create(host=source, name="foo", uuid="00000000-0000-0000-0000-000000000002", state="running",
                                memory_kib=GIB, maxmem_kib=4 * GIB, config_memory_kib=GIB, config_maxmem_kib=4 * GIB)
    Job.objects.create(kind="resize", domain=foo, host=source, params={"target_kib": GIB}, actor_kind="cli", actor_label="cli", state="running")
    client.force_login(people["operator"])
    refused = client.post(reverse("domain-migrate", args=[foo.pk]), {"target": second.pk}, **HTMX)
    assert refused.status_code == 409 and b"foo is busy" in refused.content
    assert f'<option value="{second.pk}" selected>' in refused.content.decode()


def test_a_floor_must_hold_under_the_maxmem_of_the_next_boot(client, people, small_fleet):
    foo = small_fleet["foo"]
    Domain.objects.filter(pk=foo.pk).update(config_maxmem_kib=GIB)  # lowered in the config; it runs with 4 GiB
    client.force_login(people["admin"])
    refused = client.post(reverse("domain-floor", args=[foo.pk]), {"memory": "2G"}, **HTMX)
    assert refused.status_code == 400
    assert b"a floor of 2,048 MiB is above the maxmem of foo (1,024 MiB in its config, from its next boot)" in refused.content
    Domain.objects.filter(pk=foo.pk).update(config_maxmem_kib=4 * GIB)
    Job.objects.create(kind="maxmem", domain=foo, host=foo.host, params={"maxmem_kib": GIB}, actor_kind="cli", actor_label="cli")
    queued = client.post(reverse("domain-floor", args=[foo.pk]), {"memory": "2G"}, **HTMX)
    assert queued.status_code == 400 and b"(1,024 MiB asked for by a job still to run)" in queued.content
    foo.refresh_from_db()
    assert foo.floor_kib == 128 * 1024


def test_a_new_floor_moves_the_resize_range_at_once(client, people, small_fleet):
    foo = small_fleet["foo"]
    client.force_login(people["admin"])
    html = client.post(reverse("domain-floor", args=[foo.pk]), {"memory": "1G"}, **HTMX).content.decode()
    assert "Floor set to 1,024 MiB." in html
    assert 'id="resize-form" class="control" hx-swap-oob="true"' in html and 'min="1024"' in html
    assert "between the floor and maxmem: 1,024 MiB to 4,096 MiB" in html


def test_a_gone_domain_offers_no_maxmem_or_floor(client, people, small_fleet):
    foo = small_fleet["foo"]
    Domain.objects.filter(pk=foo.pk).update(state=Domain.State.GONE)
    client.force_login(people["admin"])
    html = client.get(reverse("domain", args=[foo.pk])).content.decode()
    assert 'id="maxmem-memory"' not in html and 'id="floor-memory"' not in html
    assert "foo is no longer on host0000." in html
    refused = client.post(reverse("domain-floor", args=[foo.pk]), {"memory": "256"}, **HTMX)
    assert refused.status_code == 409 and b"foo is no longer on host0000" in refused.content


def test_a_refused_host_setting_comes_back_as_it_was_typed(client, people, small_fleet):
    hv1 = small_fleet["hv1"]
    client.force_login(people["admin"])
    response = client.post(reverse("host-settings", args=[hv1.pk]), {"reserved": "lots", "capacity": "60G"})
    html = response.content.decode()
    assert response.status_code == 400 and "&#x27;lots&#x27; is not a memory size" in html
    assert 'value="lots"' in html and 'value="60G"' in html and "<details open>" in html


def test_a_size_given_in_k_shows_as_it_is_and_types_back_unchanged(client, people, small_fleet):
    foo, hv1 = small_fleet["foo"], small_fleet["hv1"]
    Domain.objects.filter(pk=foo.pk).update(floor_kib=1_000_000)
    Host.objects.filter(pk=hv1.pk).update(reserved_kib=1_000_000)
    client.force_login(people["admin"])
    html = client.get(reverse("domain", args=[foo.pk])).content.decode()
    assert "976.56 MiB" in html and 'min="977"' in html and 'value="1000000K"' in html
    settings = client.get(reverse("host", args=[hv1.pk])).content.decode()
    assert 'id="host-reserved" name="reserved" value="1000000K"' in settings


def test_a_team_called_by_a_number_is_found_by_its_name(admin_client, small_fleet):
    from balloonweb.access.models import Team

    decoy = Team.objects.create(name="decoy")
    named = Team.objects.create(name=str(decoy.pk))
    hv1 = small_fleet["hv1"]
    admin_client.post(reverse("host-settings", args=[hv1.pk]), {"team": named.name, "reserved": "1024", "capacity": ""})
    hv1.refresh_from_db()
    assert hv1.team == named


def test_pages_run_only_the_consoles_own_scripts(client, people, small_fleet):
    """No page has an inline script: a policy of scripts from 'self' costs nothing and stops an injected one."""
    client.force_login(people["admin"])
    for page in (reverse("login"), reverse("fleet"), reverse("domain", args=[small_fleet["foo"].pk])):
        policy = client.get(page)["Content-Security-Policy"]
        assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
    assert "Content-Security-Policy" not in client.get("/api/docs/")  # Swagger's page starts with an inline script
