"""Adding, changing and removing hosts (domains/host_registry.py): from the pages and the API, on the access tests'
world (team A: hosts a1, with da running, and a2; team B: b1), and end to end with a simulated host that is
removed and added again, then polled through libvirt."""

import json

import pytest

from balloonweb.access.actors import Actor
from balloonweb.access.models import Team
from balloonweb.audit.models import AuditEntry
from domains import host_registry, services
from domains.models import Domain, Job
from domains.poller import poll_hosts
from hosts.models import Host
from hosts.drivers import DomainConfig, driver_for
from tests.access.conftest import World, make_domain
from tests.core.test_walkthrough import xm

MiB = 1024


def root(world: World) -> Actor:
    return Actor.for_user(world.users["superuser"])


def test_a_superuser_adds_a_host_from_the_fleet_page(world):
    client = world.client("superuser")
    assert 'href="/hosts/add/">Add a host</a>' in client.get("/").content.decode()
    form = {"name": "hv3", "uri": "qemu+ssh://root@hv3.example/system", "team": "A", "reserved": "1G", "capacity": "", "queue_group": "rack2"}
    added = client.post("/hosts/add/", form, follow=True)
    host = Host.objects.get(name="hv3")
    assert added.redirect_chain[-1][0] == f"/hosts/{host.pk}/"
    assert "hv3 added: BalloonWeb connects to it at its next poll" in added.content.decode()
    assert (host.team, host.reserved_kib, host.capacity_kib, host.queue_group, host.status) == (world.team_a, 1024 * MiB, None, "rack2", "offline")
    entry = AuditEntry.objects.get(action="host.add", object_repr="hv3")
    assert entry.actor_label == "root" and entry.after["reserved_kib"] == 1024 * MiB
    # Team A's admin sees it in the fleet, but may not add one.
    assert "hv3" in world.client("admin").get("/").content.decode()
    assert "Add a host" not in world.client("admin").get("/").content.decode()
    assert world.client("admin").post("/hosts/add/", {**form, "name": "hv4", "uri": "qemu:///system"}).status_code == 403
    assert AuditEntry.objects.filter(action="host.add", result=AuditEntry.Result.REFUSED, actor_label="admin").exists()


@pytest.mark.parametrize("changes, status, message", [
    ({"name": "bad name"}, 400, "'bad name' is not a host name: use up to 100 letters, digits"),
    ({"uri": "ssh://hv3"}, 400, "'ssh://hv3' is not a libvirt URI of a hypervisor BalloonWeb drives; use qemu:///system"),
    ({"uri": "qemu+ext:///system?command=/bin/sh"}, 400, "is not a libvirt URI of a hypervisor BalloonWeb drives"),
    ({"name": "a1"}, 409, "a host named a1 already exists"),
    ({"uri": "test:///a1"}, 409, "a1 already has the URI test:///a1: a hypervisor is added once"),
    ({"reserved": "lots"}, 400, "reserve: 'lots' is not a memory size; use a whole number of MiB (512), or with a unit"),
    ({"capacity": "-4G"}, 400, "capacity: '-4G' is not a memory size"),
    ({"team": "C"}, 400, "there is no team C; give a team's name or id, or nothing for no team"),
    ({"team": "99999999999999999999"}, 400, "there is no team 99999999999999999999"),
    ({"name": "h" * 101}, 400, "is not a host name: use up to 100 letters"),
    ({"uri": "qemu+ssh://root@hv3/" + "x" * 500}, 400, "is not a libvirt URI of a hypervisor BalloonWeb drives"),
    ({"queue_group": "g" * 51}, 400, "is not a queue group: up to 50 letters"),
    ({"capacity": "99999T"}, 400, "capacity: &#x27;99999T&#x27; is more than 1 PiB"),
])
def test_a_host_that_cannot_be_added_is_refused_with_what_is_allowed_and_the_form_kept(world, changes, status, message):
    form = {"name": "hv3", "uri": "qemu+ssh://root@hv3/system", "reserved": "512", **changes}
    response = world.client("superuser").post("/hosts/add/", form)
    page = response.content.decode()
    assert response.status_code == status and message.replace("'", "&#x27;") in page
    assert f'value="{form["reserved"]}"' in page  # what was typed is still there
    assert not Host.objects.filter(name="hv3").exists() and not AuditEntry.objects.filter(action="host.add", object_repr="hv3").exists()


def test_a_team_admin_sets_the_reserve_and_capacity_but_not_the_team(world):
    client = world.client("admin")
    page = client.get(f"/hosts/{world.a1.pk}/").content.decode()
    assert 'name="reserved" value="512"' in page and 'name="team"' not in page and "Remove a1" not in page
    saved = client.post(f"/hosts/{world.a1.pk}/settings/", {"reserved": "0", "capacity": "6G"}, follow=True).content.decode()
    assert "a1&#x27;s settings saved." in saved
    a1 = Host.objects.get(pk=world.a1.pk)
    assert (a1.reserved_kib, a1.capacity_kib, a1.usable_kib) == (0, 6144 * MiB, 6144 * MiB)
    assert AuditEntry.objects.get(action="host.update").after == {"capacity_kib": 6144 * MiB, "reserved_kib": 0}
    # da runs with 1,024 MiB: a capacity that leaves less is refused, and nothing changes.
    refused = client.post(f"/hosts/{world.a1.pk}/settings/", {"reserved": "512", "capacity": "1G"}, follow=True).content.decode()
    assert "a1 has 1,024 MiB running or booked: a capacity of 1,024 MiB with a reserve of 512 MiB leaves 512 MiB; shrink or move domains first" in refused
    assert Host.objects.get(pk=world.a1.pk).capacity_kib == 6144 * MiB
    # Whether the team exists or not, and however it is spelt, the answer is the same: no team is revealed.
    for team in ("B", str(world.team_b.pk), "no-such-team", "²", "99999999999999999999999"):
        with pytest.raises(services.Forbidden, match="only a superuser gives a host to another team"):
            host_registry.change_host(Actor.for_user(world.users["admin"]), world.a1, team=team)
    assert AuditEntry.objects.filter(action="host.update", result=AuditEntry.Result.REFUSED, actor_label="admin").count() == 5
    # Naming the host's own team changes nothing and needs no superuser (the API's PATCH of a whole host).
    host_registry.change_host(Actor.for_user(world.users["admin"]), world.a1, team=str(world.team_a.pk), reserved="512")
    assert client.post(f"/hosts/{world.a1.pk}/settings/", {"reserved": "1"}).status_code == 302
    assert world.client("operator").post(f"/hosts/{world.a1.pk}/settings/", {"reserved": "1"}).status_code == 403


def test_a_superuser_gives_a_host_to_another_team(world):
    host_registry.change_host(root(world), world.a2, team="B", queue_group="rack2")
    a2 = Host.objects.get(pk=world.a2.pk)
    assert (a2.team, a2.queue_group) == (world.team_b, "rack2")
    assert world.client("admin").get(f"/hosts/{a2.pk}/").status_code == 404  # no longer team A's
    assert world.client("outsider").get(f"/hosts/{a2.pk}/").status_code == 200  # team B's admin
    given = AuditEntry.objects.filter(action="host.update")  # one for each team: the one that gets it, the one that lost it
    assert {entry.team_id for entry in given} == {world.team_a.pk, world.team_b.pk}
    assert all(entry.after == {"queue_group": "rack2", "team_id": world.team_b.pk} for entry in given)


def test_only_a_host_that_runs_nothing_is_removed(world):
    client = world.client("superuser")
    kept = client.post(f"/hosts/{world.a1.pk}/remove/", follow=True).content.decode()
    assert "a1 still runs da: migrate them away first (maintenance does it for all)" in kept
    stopped = make_domain(world.a2, "stopped")
    Domain.objects.filter(pk=stopped.pk).update(state=Domain.State.SHUTOFF)
    Job.objects.create(kind=Job.Kind.MIGRATE, domain=world.da, host=world.a1, target_host=world.a2, actor_kind="cli", actor_label="cli")
    with pytest.raises(services.Conflict, match="a2 has jobs queued or running; wait for them to end"):
        host_registry.remove_host(root(world), world.a2)
    Job.objects.update(state=Job.State.SUCCEEDED)
    Host.objects.filter(pk=world.a2.pk).update(maintenance=True)  # emptied: the page points to the removal
    assert "No domain runs here any more. If a2 is leaving the fleet, remove it" in client.get(f"/hosts/{world.a2.pk}/").content.decode()
    removed = client.post(f"/hosts/{world.a2.pk}/remove/", follow=True)
    assert removed.redirect_chain[-1][0] == "/"
    assert "a2 removed, with the 1 shut-off domain BalloonWeb knew there (still defined on the hypervisor)." in removed.content.decode()
    assert not Host.objects.filter(name="a2").exists() and not Domain.objects.filter(pk=stopped.pk).exists()
    assert AuditEntry.objects.get(action="host.remove").actor_label == "root"
    assert world.client("admin").post(f"/hosts/{world.a1.pk}/remove/").status_code == 403
    assert AuditEntry.objects.filter(action="host.remove", result=AuditEntry.Result.REFUSED, actor_label="admin").exists()


def test_the_api_adds_changes_and_removes_hosts(world):
    client = world.client("superuser")

    def call(method, url, data=None):
        response = getattr(client, method)(url, json.dumps(data or {}), content_type="application/json")
        return response.status_code, response.json()

    status, added = call("post", "/api/hosts/", {"name": "hv3", "uri": "qemu+ssh://root@hv3/system", "team": world.team_a.pk, "reserved": 256})
    assert status == 201 and (added["name"], added["team_name"], added["reserved_mib"], added["status"]) == ("hv3", "A", 256, "offline")
    status, refused = call("post", "/api/hosts/", {"name": "hv4", "uri": "qemu+ssh://root@hv3/system"})
    assert (status, refused["code"]) == (409, "uri_taken")
    status, changed = call("patch", f"/api/hosts/{added['id']}/", {"capacity": "16G", "team": None})
    assert status == 200 and (changed["capacity_mib"], changed["team"]) == (16384, None)
    status, refused = call("patch", f"/api/hosts/{added['id']}/", {"uri": "qemu:///system"})
    assert (status, refused["message"]) == (400, "uri: not a field of this request; it takes team, reserved, capacity, queue_group")
    assert Host.objects.get(name="hv3").uri == "qemu+ssh://root@hv3/system"
    status, gone = call("delete", f"/api/hosts/{added['id']}/")
    assert (status, gone) == (200, {"message": "hv3 removed"})
    status, refused = call("delete", f"/api/hosts/{world.a1.pk}/")
    assert (status, refused["code"]) == (409, "host_not_empty")


def test_a_removed_simulated_host_added_again_from_the_command_line_is_polled_with_its_domains(sim_hosts):
    """Through libvirt: hv2's row is removed (nothing runs there), its hypervisor keeps going, and a domain is
    started there meanwhile; added again with the same URI, the next poll finds it online with that domain."""
    hv2 = sim_hosts["hv2"]
    assert xm("host-remove", "hv2").stdout.strip() == "hv2 removed"
    assert not Host.objects.filter(name="hv2").exists()
    driver_for(hv2.uri).define_and_start(DomainConfig("newcomer", 512 * MiB, 1024 * MiB, 1))
    added = xm("host-add", "hv2", hv2.uri, "--reserve", "512", "--capacity", "8G")
    assert added.returncode == 0 and added.stdout.strip() == "hv2 added; BalloonWeb connects to it at its next poll"
    again = Host.objects.get(name="hv2")
    assert again.status == Host.Status.OFFLINE and again.total_kib == 0
    poll_hosts([again])
    again.refresh_from_db()
    assert again.status == Host.Status.ONLINE and again.total_kib > 0 and again.usable_kib == 7680 * MiB
    assert Domain.objects.get(name="newcomer").host == again
    changed = xm("host-set", "hv2", "--reserve", "1G")
    assert changed.stdout.strip() == "hv2: reserve 1,024 MiB, usable 7,168 MiB, team none, queue group default"
    listing = xm("host-list").stdout.splitlines()
    assert listing[0].startswith("Name") and any(line.split()[:2] == ["hv2", "online"] for line in listing)
    refused = xm("host-add", "hv9", "ssh://hv9")
    assert refused.returncode == 1 and refused.stderr.startswith("xm: 'ssh://hv9' is not a libvirt URI")


def test_a_host_not_reached_yet_says_so_rather_than_showing_an_empty_bar(world):
    host = host_registry.add_host(root(world), "hv3", "qemu+ssh://root@hv3/system", team="A")
    assert "Not reached yet: its memory is not known." in world.client("admin").get("/").content.decode()
    page = world.client("admin").get(f"/hosts/{host.pk}/").content.decode()
    assert "Not reached yet: its memory is known once BalloonWeb has connected to it." in page and "0 CPUs" not in page


def test_a_team_is_deleted_from_its_page_once_its_hosts_are_given_away(world):
    """The refusal that names the team's hosts can now be acted on: give them away in their Settings."""
    client = world.client("superuser")
    page = client.get(f"/teams/{world.team_b.pk}/").content.decode()
    assert "Delete team B" in page and "Delete team" not in world.client("outsider").get(f"/teams/{world.team_b.pk}/").content.decode()
    kept = client.post(f"/teams/{world.team_b.pk}/delete/", follow=True).content.decode()
    assert "team B still has hosts (b1); move them to another team first." in kept
    client.post(f"/hosts/{world.b1.pk}/settings/", {"team": "A"})
    deleted = client.post(f"/teams/{world.team_b.pk}/delete/", follow=True)
    assert deleted.redirect_chain[-1][0] == "/teams/" and "Team B deleted." in deleted.content.decode()
    assert not Team.objects.filter(name="B").exists() and Host.objects.get(pk=world.b1.pk).team == world.team_a
    assert AuditEntry.objects.filter(action="team.delete", result=AuditEntry.Result.SUCCEEDED).exists()


@pytest.mark.parametrize("next_task", ["poll", "job"])
def test_a_removed_host_s_connection_is_released_by_the_next_poll_or_job(sim_hosts, next_task):
    """A worker process keeps one connection per host, with keepalive: once the host is removed, the process's
    next poll or job lets it go (a worker may serve only jobs), so that removed hosts are not pinged until the
    process ends."""
    from hosts.drivers import pool
    from domains import jobs
    from domains.poller import poll_fleet

    hv1, hv2 = sim_hosts["hv1"], sim_hosts["hv2"]
    driver_for(hv2.uri).host_info()
    assert hv2.uri in pool._connections
    host_registry.remove_host(Actor.command_line(), hv2)
    if next_task == "poll":
        poll_fleet()
    else:
        driver_for(hv1.uri).define_and_start(DomainConfig("foo", 1024 * MiB, 1024 * MiB, 1))
        poll_hosts([hv1])
        Host.objects.filter(pk=hv1.pk).update(queue_group="unread")  # no worker takes it: this process runs it
        job = services.request_resize(Actor.command_line(), Domain.objects.get(name="foo"), "512")
        assert jobs.run_job(job.pk) == Job.State.SUCCEEDED
    assert hv2.uri not in pool._connections and hv1.uri in pool._connections
