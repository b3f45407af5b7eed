"""Starting, shutting down and restarting domains (services.request_power), as jobs run by a real worker against
simulated hosts served by libvirtd: `xm mem-max` then `xm reboot` is how a running domain takes a new maxmem."""

import pytest
from django.contrib.auth import get_user_model

from balloonweb.access.actors import Actor
from balloonweb.access.models import Membership, Team
from balloonweb.audit.models import AuditEntry
from domains import services
from domains.models import Domain, Job
from tests.conftest import define_domain, virsh_dominfo, wait_for_job
from tests.core.test_walkthrough import xm

pytestmark = pytest.mark.usefixtures("celery_worker")

MiB = 1024


def test_a_new_maxmem_taken_by_a_reboot_lets_the_domain_grow(sim_hosts, foo):
    hv1 = sim_hosts["hv1"].uri
    assert xm("mem-set", "foo", "5000").returncode == 1  # maxmem 4096 MiB
    raised = xm("mem-max", "foo", "6144")
    assert raised.returncode == 0, raised.stderr
    assert xm("mem-set", "foo", "2048").returncode == 0
    rebooted = xm("reboot", "foo")
    assert rebooted.returncode == 0, rebooted.stderr
    # As in Xen, the live 2,048 MiB does not survive the boot: xm says so rather than losing it quietly.
    assert rebooted.stderr.strip() == "xm: foo boots with 1,024 MiB from its config (it has 2,048 MiB now; xm mem-set after the boot changes it)"
    assert "foo started on hv1 with its persistent config" in rebooted.stdout
    assert virsh_dominfo(hv1, "foo")["Max memory"] == f"{6144 * MiB} KiB"
    foo = Domain.objects.get(name="foo")
    assert (foo.state, foo.maxmem_kib, foo.booted_at is not None) == ("running", 6144 * MiB, True)
    grown = xm("mem-set", "foo", "5000")
    assert grown.returncode == 0, grown.stderr
    assert virsh_dominfo(hv1, "foo")["Used memory"] == f"{5000 * MiB} KiB"
    job = Job.objects.get(kind=Job.Kind.RESTART)
    assert job.state == Job.State.SUCCEEDED and "asked to shut down" in job.log and "shut down" in job.log
    entry = AuditEntry.objects.get(action="domain.power")
    assert (entry.actor_kind, entry.before, entry.after) == ("cli", {"state": "running"}, {"action": "restart", "memory_kib": 1024 * MiB})


def test_shut_down_start_and_destroy(sim_hosts, foo):
    hv1 = sim_hosts["hv1"].uri
    assert xm("shutdown", "foo").returncode == 0
    assert virsh_dominfo(hv1, "foo")["State"] == "shut off"
    assert Domain.objects.get(name="foo").state == "shutoff"
    assert services.booked_kib(sim_hosts["hv1"]) == 0
    again = xm("shutdown", "foo")
    assert (again.returncode, again.stderr.strip()) == (1, "xm: foo is shut off: only a running domain is shut down or restarted; start it instead")
    assert xm("start", "foo").returncode == 0
    assert virsh_dominfo(hv1, "foo")["State"] == "running"
    started_twice = xm("start", "foo")
    assert (started_twice.returncode, started_twice.stderr.strip()) == (1, "xm: foo is already running")
    destroyed = xm("destroy", "foo")
    assert destroyed.returncode == 0 and "foo turned off at once (forced)" in destroyed.stdout
    assert AuditEntry.objects.filter(action="domain.power").order_by("-id").first().after == {"action": "shutdown at once"}
    assert virsh_dominfo(hv1, "foo")["State"] == "shut off"


def test_a_start_needs_room_and_quota_and_a_host_not_in_maintenance(sim_hosts, cli):
    hv1 = sim_hosts["hv1"]  # 7680 MiB usable
    big = define_domain(hv1, "big", 4096, 4096)
    wait_for_job(services.request_power(cli, big, "shutdown"))
    define_domain(hv1, "squatter", 4096, 4096)  # took the room meanwhile
    with pytest.raises(services.Conflict, match=r"hv1 has no room: 4,096 MiB asked, 3,584 MiB free"):
        services.request_power(cli, big, "start")
    # A queued start books its memory: a creation that would fit beside the stopped domain is refused meanwhile.
    squatter = Domain.objects.get(name="squatter")
    wait_for_job(services.request_power(cli, squatter, "shutdown", force=True))
    start = services.request_power(cli, big, "start")
    with pytest.raises(services.Conflict, match="no_room|hv1 has no room"):
        services.request_create(cli, hv1, 'name = "late"\nmemory = 4096\n')
    assert wait_for_job(start).state == Job.State.SUCCEEDED
    # The team's quota counts a boot like a grow; superusers and the command line are not bound by it.
    wait_for_job(services.request_power(cli, big, "shutdown", force=True))
    team = Team.objects.create(name="blue", quota_kib=2048 * MiB)
    hv1.team = team
    hv1.save()
    blue_admin = get_user_model().objects.create_user("blue-admin")
    Membership.objects.create(team=team, user=blue_admin, role="admin")
    with pytest.raises(services.Forbidden, match="the team blue's quota of 2,048 MiB running memory would be exceeded"):
        services.request_power(Actor.for_user(blue_admin), big, "start")
    assert AuditEntry.objects.filter(action="domain.power", result="refused", actor_label="blue-admin").exists()
    hv1.maintenance = True
    hv1.save()
    with pytest.raises(services.Conflict, match="hv1 is in maintenance"):
        services.request_power(cli, big, "start")


def test_a_restart_waits_for_the_maxmem_change_asked_before_it(sim_hosts, foo, cli):
    """Both queued at once: the restart must not boot before the new maxmem is in the config."""
    maxmem = services.request_set_maxmem(cli, foo, "8192")
    restart = services.request_power(cli, foo, "restart")
    assert wait_for_job(restart).state == Job.State.SUCCEEDED
    maxmem.refresh_from_db()
    assert maxmem.state == Job.State.SUCCEEDED and maxmem.finished <= restart.started
    assert Domain.objects.get(pk=foo.pk).maxmem_kib == 8192 * MiB


def test_one_power_job_at_a_time_and_nothing_else_meanwhile(sim_hosts, foo, cli):
    Job.objects.all().delete()
    # Held queued: no worker listens on this group's queue.
    sim_hosts["hv1"].__class__.objects.filter(pk=sim_hosts["hv1"].pk).update(queue_group="nobody")
    services.request_power(cli, foo, "restart")
    for ask in (lambda: services.request_power(cli, foo, "shutdown"), lambda: services.request_resize(cli, foo, "512"),
                lambda: services.request_migrate(cli, foo, sim_hosts["hv2"])):
        with pytest.raises(services.Conflict, match=r"foo is busy: job \d+ \(restart\) is queued; wait for it to end, or cancel it"):
            ask()
    with pytest.raises(services.BadRequest, match="'reboot' is not a power action: use start, shutdown or restart"):
        services.request_power(cli, foo, "reboot")


def test_the_domain_page_offers_power_to_admins(sim_hosts, foo, client):
    team = Team.objects.create(name="blue")
    sim_hosts["hv1"].__class__.objects.filter(pk=foo.host_id).update(team=team)
    users = {role: get_user_model().objects.create_user(f"blue-{role}") for role in ("operator", "admin")}
    for role, user in users.items():
        Membership.objects.create(team=team, user=user, role=role)
    client.force_login(users["operator"])
    page = client.get(f"/domains/{foo.pk}/").content.decode()
    assert "Only a team admin starts, shuts down or restarts a domain." in page and 'value="force_off"' not in page
    client.force_login(users["admin"])
    page = client.get(f"/domains/{foo.pk}/").content.decode()
    assert 'value="restart"' in page and 'value="shutdown"' in page and 'value="force_off"' in page
    assert "Restart shuts foo down, then starts it with 1,024 MiB (maxmem 4,096 MiB)." in page
    answer = client.post(f"/domains/{foo.pk}/power/", {"action": "force_off"}, headers={"HX-Request": "true"})
    assert answer.status_code == 200 and "queued: turn foo off at once." in answer.content.decode()
    wait_for_job(Job.objects.get(kind=Job.Kind.SHUTDOWN))
    page = client.get(f"/domains/{foo.pk}/").content.decode()
    assert 'value="start"' in page and "Start boots foo with its persistent config: 1,024 MiB (maxmem 4,096 MiB)." in page
    refused = client.post(f"/domains/{foo.pk}/power/", {"action": "explode"}, headers={"HX-Request": "true"})
    assert refused.status_code == 400 and "Pick start, shut down, restart or force off." in refused.content.decode()
    # After a new maxmem, the page says a restart is how the running domain takes it.
    client.post(f"/domains/{foo.pk}/power/", {"action": "start"})
    wait_for_job(Job.objects.get(kind=Job.Kind.START))
    wait_for_job(services.request_set_maxmem(Actor.command_line(), foo, "8G"))
    page = client.get(f"/domains/{foo.pk}/").content.decode()
    assert "Restart to take the new maxmem: foo shuts down, then starts with 1,024 MiB (maxmem 8,192 MiB)." in page
    # The host's table marks it too, for whoever looks for the domains a restart would change.
    row = client.get(f"/hosts/{foo.host_id}/").content.decode().split(f'id="domain-{foo.pk}"')[1].split("</tr>")[0]
    assert '<td class="num">4096 <span class="note"' in row and "→ 8192</span>" in row
    # The domains page finds the running domains a restart would change.
    define_domain(sim_hosts["hv1"], "bar", 512, 1024)
    listed = client.get("/domains/", {"state": "restart"}).content.decode()
    assert f'href="/domains/{foo.pk}/">foo</a>' in listed and ">bar</a>" not in listed
    assert '<option value="restart" selected>running, new maxmem at restart</option>' in listed


def test_a_queued_restart_books_the_larger_of_the_size_now_and_the_size_it_boots_with(sim_hosts, cli):
    """Until it stops the domain holds its size now, then it boots with its config's: never both at once, which
    would refuse others room the host has."""
    hv1 = sim_hosts["hv1"]  # 7680 MiB usable
    big = define_domain(hv1, "big", 4096, 4096)
    hv1.__class__.objects.filter(pk=hv1.pk).update(queue_group="nobody")  # the restart stays queued
    services.request_power(cli, big, "restart")
    assert services.booked_kib(hv1) == 4096 * MiB
    services.request_create(cli, hv1, 'name = "beside"\nmemory = 3072\n')  # 3,584 MiB free beside it
    with pytest.raises(services.Conflict, match=r"hv1 has no room: 1,024 MiB asked, 512 MiB free"):
        services.request_create(cli, hv1, 'name = "one-more"\nmemory = 1024\n')


def test_the_autoscaler_counts_a_queued_restart_as_the_services_book_it(sim_hosts, cli):
    """The larger of its size now and its boot size, not both: the engine planned as if the host had 4 GiB less."""
    from domains.autoscaler.state import build_snapshot

    hv1 = sim_hosts["hv1"]
    big = define_domain(hv1, "big", 4096, 4096)
    hv1.__class__.objects.filter(pk=hv1.pk).update(queue_group="nobody")  # the restart stays queued
    services.request_power(cli, big, "restart")
    host = next(h for h in build_snapshot().snapshot.hosts if h.id == hv1.pk)
    assert host.incoming_kib == 0
