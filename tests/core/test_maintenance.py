"""Maintenance: an admin empties a host (domains/maintenance.py). On the database with the access tests' world
(team A: hosts a1 and a2 of 7,680 MiB usable, domain da on a1), and end to end on the simulated hosts with a
real worker and libvirt."""

import pytest

from balloonweb.access.actors import Actor
from balloonweb.audit.models import AuditEntry
from domains import maintenance, services
from domains.autoscaler.models import Decision, EngineState, TeamPolicy
from domains.autoscaler.run import run_autoscaler, what_if
from domains.models import Domain, Job
from hosts.models import Host
from tests.access.conftest import World, make_domain, make_host
from tests.conftest import define_domain, virsh
from tests.core.test_walkthrough import xm

MiB = 1024


def admin(world: World) -> Actor:
    return Actor.for_user(world.users["admin"])


def test_starting_maintenance_moves_the_running_domains_away_largest_first_to_the_most_room(world):
    """a1 holds da (1,024 MiB), big (4,096) and mid (2,048), and a stopped one; a2 has 5,680 MiB free, a3 3,680:
    big goes to a2 (1,584 left), mid to a3 (1,632 left), da to a3, which has the most left by then."""
    a3 = make_host("a3", world.team_a)
    make_domain(a3, "filler", memory_mib=4000)
    make_domain(world.a2, "resident", memory_mib=2000)
    make_domain(world.a1, "big", memory_mib=4096)
    make_domain(world.a1, "mid", memory_mib=2048)
    stopped = make_domain(world.a1, "stopped")
    Domain.objects.filter(pk=stopped.pk).update(state=Domain.State.SHUTOFF)

    preview = maintenance.preview(admin(world), world.a1)
    assert [(d.name, h.name) for d, h in preview.moves] == [("big", "a2"), ("mid", "a3"), ("da", "a3")]
    assert [(d.name, reason) for d, reason in preview.staying] == [("stopped", "shut off: only a running domain migrates live")]
    assert not Job.objects.filter(kind=Job.Kind.MIGRATE).exists() and not Host.objects.get(pk=world.a1.pk).maintenance

    done = maintenance.start(admin(world), world.a1)
    assert Host.objects.get(pk=world.a1.pk).maintenance
    jobs = Job.objects.filter(kind=Job.Kind.MIGRATE).order_by("pk")
    assert [(j.domain.name, j.target_host.name, j.actor_label) for j in jobs] == [
        ("big", "a2", "admin"), ("mid", "a3", "admin"), ("da", "a3", "admin")]
    assert [j.pk for j in done.jobs] == [j.pk for j in jobs]
    assert AuditEntry.objects.filter(action="host.maintenance", object_repr="a1", after={"maintenance": True}).exists()


def test_a_domain_that_fits_nowhere_stays_and_says_why(world):
    make_domain(world.a2, "resident", memory_mib=7000)
    preview = maintenance.preview(admin(world), world.a1)
    assert not preview.moves
    assert preview.staying == [(world.da, "no host has room for its 1,024 MiB: the most is 680 MiB on a2")]


def test_a_superusers_maintenance_keeps_the_domains_in_their_team(world):
    """b1 (team B) has the room, but a move there would give da to team B: it stays, and says why."""
    make_domain(world.a2, "filler", memory_mib=7000)
    done = maintenance.start(Actor.for_user(world.users["superuser"]), world.a1)
    assert done.jobs == [] and done.staying == [(world.da, "no host has room for its 1,024 MiB: the most is 680 MiB on a2")]


def test_starting_maintenance_again_moves_what_stayed_once_there_is_room(world):
    """The autoscaler is off: a domain that fit nowhere stays until a person makes room and moves it, from the
    host page, by starting maintenance again."""
    resident = make_domain(world.a2, "resident", memory_mib=7000)
    first = world.client("admin").post(f"/hosts/{world.a1.pk}/maintenance/start/", follow=True).content.decode()
    assert "a1 is in maintenance: no domain to move." in first and "da stays: no host has room for its 1,024 MiB" in first
    assert "Move the 1 running domain still here" in first
    Domain.objects.filter(pk=resident.pk).update(memory_kib=4000 * MiB)  # someone shrank it
    preview = world.client("admin").get(f"/hosts/{world.a1.pk}/part/evacuation/", HTTP_HX_REQUEST="true").content.decode()
    assert "It would move 1 running domain: 1 to a2 (1,024 MiB)." in preview
    again = world.client("admin").post(f"/hosts/{world.a1.pk}/maintenance/start/", follow=True).content.decode()
    job = Job.objects.get(kind=Job.Kind.MIGRATE, domain=world.da)
    assert f"a1 was in maintenance already; for the domains still here: 1 migration queued (job {job.pk})." in again
    assert job.target_host_id == world.a2.pk and job.actor_label == "admin"
    on_its_way = world.client("admin").get(f"/hosts/{world.a1.pk}/part/evacuation/", HTTP_HX_REQUEST="true").content.decode()
    assert "da is on its way to a2" in on_its_way and "It would move" not in on_its_way


def test_a_host_in_maintenance_takes_no_domain_from_anyone(world):
    maintenance.start(admin(world), world.a2)
    with pytest.raises(services.Conflict, match="a2 is in maintenance: it takes no domains"):
        services.request_migrate(admin(world), world.da, world.a2)
    with pytest.raises(services.Conflict, match="in maintenance"):
        services.request_create(admin(world), world.a2, 'name = "new"\nmemory = 512\n')
    # Nor the autoscaler's what-if: a2 is empty, but only a1 is counted on.
    TeamPolicy.objects.create(team=world.team_a, mode="recommend")
    assert what_if(admin(world), 512 * MiB, 512 * MiB).host_id == world.a1.pk
    maintenance.end(admin(world), world.a2)
    assert services.request_migrate(admin(world), world.da, world.a2).target_host_id == world.a2.pk


def test_only_the_hosts_admins_start_or_end_maintenance(world):
    for role in ("operator", "viewer"):
        with pytest.raises(services.Forbidden):
            maintenance.start(Actor.for_user(world.users[role]), world.a1)
    with pytest.raises(services.NotFound):
        maintenance.start(Actor.for_user(world.users["outsider"]), world.a1)
    assert not Host.objects.get(pk=world.a1.pk).maintenance and not Job.objects.filter(kind=Job.Kind.MIGRATE).exists()
    assert AuditEntry.objects.filter(action="host.maintenance", result=AuditEntry.Result.REFUSED, actor_label="operator").exists()
    maintenance.start(admin(world), world.a1)
    # Again: da is already on its way, so nothing more is queued, and the host's state did not change.
    again = maintenance.start(admin(world), world.a1)
    assert again.already and not again.jobs and [(d.name, to) for d, to in again.moving] == [("da", "a2")]
    assert Job.objects.filter(kind=Job.Kind.MIGRATE).count() == 1
    assert AuditEntry.objects.filter(action="host.maintenance", result=AuditEntry.Result.SUCCEEDED).count() == 1


def test_the_host_page_shows_the_plan_to_its_admins_and_starts_and_ends_it(world):
    page = world.client("admin").get(f"/hosts/{world.a1.pk}/").content.decode()
    assert "Start maintenance" in page and "It would move" not in page  # worked out when the section is opened
    preview = world.client("admin").get(f"/hosts/{world.a1.pk}/part/evacuation/", HTTP_HX_REQUEST="true").content.decode()
    assert "It would move 1 running domain: 1 to a2 (1,024 MiB)." in preview and "da</a> (1,024 MiB) to a2" in preview
    without_js = world.client("admin").get(f"/hosts/{world.a1.pk}/?evacuation=1").content.decode()
    assert "<details open>" in without_js and "It would move 1 running domain: 1 to a2 (1,024 MiB)." in without_js
    assert "Start maintenance" not in world.client("operator").get(f"/hosts/{world.a1.pk}/").content.decode()
    assert world.client("operator").post(f"/hosts/{world.a1.pk}/maintenance/start/").status_code == 403
    started = world.client("admin").post(f"/hosts/{world.a1.pk}/maintenance/start/", follow=True).content.decode()
    job = Job.objects.get(kind=Job.Kind.MIGRATE)
    assert f"a1 is in maintenance: 1 migration queued (job {job.pk})." in started and "End maintenance" in started
    assert "In maintenance: 1 running domain still here." in started  # in the live part, until da has gone
    # Everyone who sees the host sees that it takes no domains; the migrate form on a domain page says so too.
    assert "In maintenance" in world.client("viewer").get("/").content.decode()
    team_page = world.client("admin").get(f"/teams/{world.team_a.pk}/").content.decode()
    assert f'<a href="/hosts/{world.a1.pk}/">a1</a> (in maintenance)' in team_page
    world.client("admin").post(f"/hosts/{world.a2.pk}/maintenance/start/")
    other = make_domain(world.a1, "other")  # a2 has da's 1,024 MiB booked, on its way
    assert "a2 — 6,656 MiB free (in maintenance)" in world.client("admin").get(f"/domains/{other.pk}/").content.decode()
    ended = world.client("admin").post(f"/hosts/{world.a1.pk}/maintenance/end/", follow=True).content.decode()
    assert "a1 takes domains again." in ended


def test_the_api_starts_and_ends_maintenance(world):
    client = world.client("admin")
    response = client.post(f"/api/hosts/{world.a1.pk}/maintenance/", {"on": True}, content_type="application/json")
    assert response.status_code == 200
    body = response.json()
    assert body["maintenance"] is True and body["jobs"] == [Job.objects.get(kind=Job.Kind.MIGRATE).pk] and body["staying"] == []
    assert body["job_urls"] == [f"http://testserver/api/jobs/{body['jobs'][0]}/"]
    assert client.get(f"/api/hosts/{world.a1.pk}/").json()["maintenance"] is True
    again = client.post(f"/api/hosts/{world.a1.pk}/maintenance/", {"on": True}, content_type="application/json").json()
    assert again["jobs"] == [] and again["moving"] == [{"domain": "da", "to": "a2"}]
    assert world.client("operator").post(f"/api/hosts/{world.a1.pk}/maintenance/", {"on": False}, content_type="application/json").status_code == 403
    bad = client.post(f"/api/hosts/{world.a1.pk}/maintenance/", {}, content_type="application/json")
    assert bad.status_code == 400
    ended = client.post(f"/api/hosts/{world.a1.pk}/maintenance/", {"on": False}, content_type="application/json").json()
    assert ended["maintenance"] is False


def test_maintenance_empties_a_simulated_host_through_the_workers(celery_worker, sim_hosts):
    """From the command line, as `xe host-evacuate`: largest first, big and web move to hv2 (7,680 MiB free),
    db no longer fits after big and stays, named with the reason; libvirt agrees, and hv1 takes nothing back.
    Once big has been shrunk, asking again moves db."""
    hv1, hv2 = sim_hosts["hv1"], sim_hosts["hv2"]
    for name, size in (("web", 1024), ("db", 2048), ("big", 6000)):
        define_domain(hv1, name, size)
    booted_at = Domain.objects.get(name="web").booted_at
    started = xm("maintenance", "hv1", "on")
    # Exit 1, as `xe host-evacuate`: a script that powers the host off after it must not.
    assert started.returncode == 1 and started.stderr.splitlines() == [
        "xm: db stays on hv1: no host has room for its 2,048 MiB: the most is 1,680 MiB on hv2",
        "xm: hv1 still runs db: it is in maintenance but not empty",
    ]
    assert started.stdout.splitlines()[-1] == "hv1 is in maintenance: 2 domain(s) moved, 1 stayed"
    assert set(Domain.objects.present().filter(host=hv2).values_list("name", flat=True)) == {"web", "big"}
    assert Domain.objects.get(name="web").booted_at == booted_at  # a move is not a boot
    assert "web" in virsh(hv2.uri, "list", "--name") and "web" not in virsh(hv1.uri, "list", "--name")
    refused = xm("migrate", "web", "hv1")
    assert refused.returncode == 1 and "hv1 is in maintenance: it takes no domains" in refused.stderr
    # Someone makes room on hv2, and asks again: db moves, and only db.
    assert xm("mem-set", "big", "4000").returncode == 0  # hv2 had 656 MiB left
    again = xm("maintenance", "hv1", "on")
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert again.stdout.splitlines()[-1] == "hv1 is in maintenance: 1 domain(s) moved, 0 stayed"
    assert set(Domain.objects.present().filter(host=hv2).values_list("name", flat=True)) == {"web", "big", "db"}
    assert not Domain.objects.present().filter(host=hv1).exists() and "db" in virsh(hv2.uri, "list", "--name")
    assert xm("maintenance", "hv1", "off").stdout.strip() == "hv1 takes domains again"


def test_a_change_asked_with_an_old_copy_of_a_moved_domain_is_made_where_it_runs(world):
    """A page or a step may hold a domain as it was before a migration: the services go by where it runs now."""
    stale = Domain.objects.get(pk=world.da.pk)
    Domain.objects.filter(pk=world.da.pk).update(host=world.a2)
    assert services.request_resize(admin(world), stale, "512").host_id == world.a2.pk
    Job.objects.update(state=Job.State.SUCCEEDED)
    with pytest.raises(services.BadRequest, match="already runs on a2"):
        services.request_migrate(admin(world), stale, world.a2)
    assert services.request_migrate(admin(world), stale, world.a1).host_id == world.a2.pk


def test_the_autoscaler_moves_what_stayed_once_another_host_has_room(world):
    """Recommend mode: a domain that stayed on a host in maintenance is recommended a move as soon as another
    host has room for it, with the maintenance as its reason; until then the host's note says so."""
    TeamPolicy.objects.create(team=world.team_a, mode="recommend")
    Domain.objects.filter(pk=world.da.pk).update(actual_kib=1024 * MiB, available_kib=1000 * MiB, unused_kib=500 * MiB)
    full = make_domain(world.a2, "full", memory_mib=7600, maxmem_mib=7600)
    Domain.objects.filter(pk=full.pk).update(actual_kib=7600 * MiB, available_kib=7400 * MiB, unused_kib=100 * MiB)
    done = maintenance.start(admin(world), world.a1)
    assert done.jobs == [] and done.staying[0][0] == world.da
    run_autoscaler(EngineState.get().last_run_at + 1000)
    assert not Decision.objects.filter(step_kind="migrate").exists()
    assert Decision.objects.filter(host=world.a1, code="maintenance").exists()
    Domain.objects.filter(pk=full.pk).update(state=Domain.State.SHUTOFF)  # room on a2
    run_autoscaler(EngineState.get().last_run_at + 1000)
    move = Decision.objects.get(step_kind="migrate", state=Decision.State.RECOMMENDED)
    assert (move.domain_id, move.to_host_id) == (world.da.pk, world.a2.pk)
    assert move.reason.startswith("a1 is in maintenance: move da (1,024 MiB) to a2")


def test_a_move_asked_before_maintenance_began_does_not_land_on_the_emptied_host(world):
    """Maintenance was checked only when a job was asked for: `xm maintenance a2 on && poweroff` emptied a2 and
    exited 0 while a move asked a moment before was still queued, which then brought its domain to a2."""
    from domains import jobs

    move = services.request_migrate(admin(world), world.da, world.a2)
    maintenance.start(admin(world), world.a2)
    assert jobs.run_job(move.pk) == jobs.Claim.SKIP
    move.refresh_from_db()
    assert (move.state, move.error_code) == (Job.State.CANCELLED, "in_maintenance")
    assert move.error == "a2 went into maintenance after this job was asked: it takes no domain now"
    assert Domain.objects.get(pk=world.da.pk).host == world.a1


def test_xm_maintenance_says_an_empty_host_is_empty_after_a_move_into_it_was_cancelled(sim_hosts, cli):
    """The move queued into the host before maintenance began is cancelled when a worker picks it up: the host is
    empty, and the command must say so (exit 0), not count the cancelled move as a failed one."""
    import subprocess
    import sys
    import time

    from domains import jobs
    from tests.conftest import ROOT, child_environment

    hv1, hv2 = sim_hosts["hv1"], sim_hosts["hv2"]
    foo = define_domain(hv1, "foo", 1024)
    Host.objects.filter(pk=hv1.pk).update(queue_group="unread")  # this test runs the move itself
    move = services.request_migrate(cli, foo, hv2)
    command = subprocess.Popen([sys.executable, "manage.py", "xm", "maintenance", "hv2", "on"], cwd=ROOT,
                               env=child_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not Host.objects.get(pk=hv2.pk).maintenance:
        assert time.monotonic() < deadline and command.poll() is None, command.communicate()
        time.sleep(0.1)
    assert jobs.run_job(move.pk) == jobs.Claim.SKIP  # cancelled: hv2 is in maintenance
    out, err = command.communicate(timeout=60)
    assert command.returncode == 0, err
    assert out.splitlines()[-1] == "hv2 is in maintenance: 0 domain(s) moved, 0 stayed"
    # Said when the command was still waiting for the move as it was cancelled (it may have looked after that).
    assert err in ("", f"xm: job {move.pk} cancelled: hv2 went into maintenance after this job was asked: it takes no domain now\n")
