"""The stats poller and the inventory, against real libvirtd hosts."""

import gc
import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from domains import inventory, poller, services
from domains.models import Domain, Job, MemorySample
from hosts.drivers import DomainConfig, driver_for
from hosts.models import Host
from hosts.simulation import fleet, setup
from tests.conftest import ROOT, child_environment, define_domain, virsh, wait_for_job


def test_inventory_new_vanished_and_moved(sim_hosts):
    hv1, hv2 = sim_hosts["hv1"], sim_hosts["hv2"]
    d1, d2 = driver_for(hv1.uri), driver_for(hv2.uri)
    from hosts.drivers import DomainConfig

    created = d1.define_and_start(DomainConfig("newcomer", 512 * 1024, 1024 * 1024, 2))
    report = poller.poll_hosts([hv1, hv2])
    newcomer = Domain.objects.get(uuid=created.uuid)
    assert (newcomer.host, newcomer.state, newcomer.memory_kib, newcomer.config_maxmem_kib, newcomer.vcpus) == (hv1, "running", 512 * 1024, 1024 * 1024, 2)
    assert newcomer.floor_kib == 128 * 1024
    assert newcomer.available_kib is not None and newcomer.unused_kib is not None  # the demand model's figures
    assert report.online == 2

    # Moved outside BalloonWeb: defined on hv2 with the same UUID, undefined on hv1. Same row, new host.
    xml = d1.domain_xml(created.uuid)
    d2.define_xml_and_start(xml)
    d1.undefine(created.uuid)
    present = poller.present_domains([hv1, hv2])
    messages, _, _ = poller.write_readings(poller.read_hosts([hv1, hv2], present), present)
    newcomer.refresh_from_db()
    assert newcomer.host == hv2 and Domain.objects.filter(uuid=created.uuid).count() == 1
    # hv1's pages hear it left (a domain page listening there follows it), hv2's that it came.
    assert ("host", hv1.pk, {"type": "domains", "domains": [newcomer.pk], "moved": [newcomer.pk]}) in messages
    assert ("host", hv2.pk, {"type": "domains", "domains": [newcomer.pk]}) in messages
    # Both fleet bars moved; no host hint, which every domain page of a host would refetch for: no host changed.
    assert ("fleet", None, {"type": "hosts", "hosts": sorted([hv1.pk, hv2.pk])}) in [
        (topic, key, {**payload, "hosts": sorted(payload["hosts"])}) for topic, key, payload in messages if topic == "fleet"
    ]
    assert not [m for m in messages if m[2]["type"] == "host"]

    d2.undefine(created.uuid)
    poller.poll_hosts([hv1, hv2])
    newcomer.refresh_from_db()
    assert newcomer.state == Domain.State.GONE


def test_one_bulk_write_per_cycle(sim_hosts, settings):
    """As many statements for 60 domains as for 30: on SQLite one executemany per table, on PostgreSQL one COPY
    (into a temporary table, then one UPDATE from it); and one read of the jobs that own domains now."""
    settings.SAMPLE_EVERY_S = 0  # a sample of every domain at every poll, so that both polls write the same tables
    counts = []
    for batch in (range(30), range(30, 60)):
        for i in batch:
            define_domain(sim_hosts["hv1"], f"d{i}", 256, 512)
        poller.poll_hosts(list(sim_hosts.values()))
        hosts = list(Host.objects.all())
        with CaptureQueriesContext(connection) as queries:
            report = poller.poll_hosts(hosts)
        counts.append(len(queries))
        assert report.domains == batch.stop
    assert counts[0] == counts[1] <= 14  # on PostgreSQL one of them asks the database's clock (domains/clock.py)


def test_a_domain_is_sampled_when_its_balloon_moves_and_is_still_seen_at_every_poll(sim_hosts, settings):
    settings.SAMPLE_EVERY_S = 10**9  # no periodic sample falls due for decades: only changes are sampled
    hv1 = sim_hosts["hv1"]
    domain = define_domain(hv1, "charted", 1024, 2048)
    poller.poll_hosts([hv1])  # the first balloon figures: a sample
    seen = Domain.objects.get(pk=domain.pk).last_seen
    poller.poll_hosts([hv1])  # nothing moved: no sample, but the row says it was seen now
    assert Domain.objects.get(pk=domain.pk).last_seen > seen
    driver_for(hv1.uri).set_memory(domain.uuid, 512 * 1024, live=True, config=False)
    poller.poll_hosts([hv1])
    samples = MemorySample.objects.filter(domain=domain).order_by("at")
    assert list(samples.values_list("memory_kib", "actual_kib")) == [(1024 * 1024,) * 2, (512 * 1024,) * 2]


def test_a_poll_leaves_the_cyclic_collector_as_it_found_it(sim_hosts):
    poller.poll_hosts([sim_hosts["hv1"]])
    assert gc.isenabled()
    gc.disable()
    try:
        poller.poll_hosts([sim_hosts["hv1"]])
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_balloon_figures_follow_the_demand_model(sim_hosts):
    domain = define_domain(sim_hosts["hv1"], "idle", 2048, 2048, description="demand: idle 1G")
    poller.poll_hosts([sim_hosts["hv1"]])
    domain.refresh_from_db()
    assert domain.actual_kib == 2048 * 1024
    assert domain.used_kib == 1024 * 1024 // 8  # idle: an eighth of its base
    assert domain.unused_kib == domain.available_kib - domain.used_kib


def test_the_first_poll_after_a_failure_marks_the_host(sim_hosts):
    sim = fleet.simhost("hv2")
    os.kill(sim.pid(sim.daemon_pid_file), signal.SIGKILL)
    poller.poll_hosts(list(sim_hosts.values()))
    hv2 = Host.objects.get(name="hv2")
    assert hv2.status == Host.Status.OFFLINE and hv2.last_error.startswith("host unreachable")
    assert Host.objects.get(name="hv1").status == Host.Status.ONLINE
    fleet.stop_processes(sim)
    setup.start("hv2", memory_mib=8192, reserve_mib=512)
    assert Host.objects.get(name="hv2").status == Host.Status.ONLINE


def test_a_dead_host_goes_offline_within_one_interval_and_comes_back(sim_hosts, foo, cli, start_worker):
    """With beat and a worker running: kill hv1's libvirtd, see it offline within one poll interval, its jobs
    fail with "host unreachable", and restart it to see it online again with its domains."""
    start_worker("poller", "jobs,poll,poll.slow", 2)
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "balloonweb", "beat", "-s", str(settings.STATE_DIR / "beat-schedule"), "-l", "warning"],
        cwd=ROOT, env=child_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        queued = services.request_resize(cli, foo, "512")
        wait_for_job(queued)
        Host.objects.filter(name="hv1").update(queue_group="slow")  # its next job waits in a queue no one reads yet
        foo.refresh_from_db()
        waiting = services.request_resize(cli, foo, "768")
        sim = fleet.simhost("hv1")
        os.kill(sim.pid(sim.daemon_pid_file), signal.SIGKILL)
        killed_at = time.monotonic()
        while Host.objects.get(name="hv1").status == Host.Status.ONLINE and time.monotonic() - killed_at < 10:
            time.sleep(0.1)
        took = time.monotonic() - killed_at
        hv1 = Host.objects.get(name="hv1")
        assert hv1.status == Host.Status.OFFLINE and "host unreachable" in hv1.last_error
        # One interval, plus the time beat and the worker take to hand the poll over and run it, which on a
        # loaded 2-core machine is seconds; test_the_first_poll_after_a_failure_marks_the_host shows no grace.
        assert took <= settings.POLL_INTERVAL + 6.0

        start_worker("slow", "jobs.slow", 1)
        failed = wait_for_job(waiting)
        assert (failed.state, failed.error_code, failed.error) == ("failed", "host_unreachable", "host unreachable: hv1 does not answer")

        refused = None
        try:
            services.request_resize(cli, foo, "600")
        except services.Unavailable as exc:
            refused = exc
        assert refused is not None and refused.message.startswith("host unreachable: hv1 is offline")

        fleet.stop_processes(sim)
        setup.start("hv1", memory_mib=8192, reserve_mib=512)
        deadline = time.monotonic() + 10
        while Host.objects.get(name="hv1").status != Host.Status.ONLINE and time.monotonic() < deadline:
            time.sleep(0.1)
        assert Host.objects.get(name="hv1").status == Host.Status.ONLINE
        foo.refresh_from_db()
        # Booted again from its saved config, at its configured size, as a real host's guests after a crash.
        assert foo.state == "running" and foo.memory_kib == 1024 * 1024
    finally:
        os.killpg(beat.pid, signal.SIGTERM)
        beat.wait(timeout=15)


def test_a_domain_on_two_hosts_mid_migration_stays_where_it_runs(sim_hosts, foo):
    """A live migration lists the guest on both hosts, paused on the destination until it arrives."""
    hv1, hv2 = sim_hosts["hv1"], sim_hosts["hv2"]
    d1, d2 = driver_for(hv1.uri), driver_for(hv2.uri)
    d2.define_xml_and_start(d1.domain_xml(str(foo.uuid)))
    virsh(hv2.uri, "suspend", "foo")  # the incoming copy
    for order in ([hv1, hv2], [hv2, hv1]):
        poller.poll_hosts(order)
        foo.refresh_from_db()
        assert (foo.host, foo.state) == (hv1, "running"), order
    # It arrived: running on hv2, no longer on hv1.
    virsh(hv2.uri, "resume", "foo")
    d1.undefine(str(foo.uuid))
    poller.poll_hosts([hv1, hv2])
    foo.refresh_from_db()
    assert (foo.host, foo.state) == (hv2, "running")


def test_a_reading_older_than_a_jobs_end_does_not_undo_it(sim_hosts, foo, celery_worker, cli):
    """The poll read foo at 1,024 MiB; a resize to 2,048 ended before the poll wrote: the row keeps 2,048 (else
    the host would count 1,024 MiB less than it runs until the next poll)."""
    hosts = [sim_hosts["hv1"]]
    present = poller.present_domains(hosts)
    read_at = timezone.now()
    readings = poller.read_hosts(hosts, present)
    assert wait_for_job(services.request_resize(cli, foo, "2048")).state == Job.State.SUCCEEDED
    poller.write_readings(readings, present, read_at)
    assert Domain.objects.get(pk=foo.pk).memory_kib == 2048 * 1024
    poller.poll_hosts(hosts)  # the next poll reads afresh
    assert Domain.objects.get(pk=foo.pk).memory_kib == 2048 * 1024


def test_a_job_that_writes_while_the_poll_is_writing_is_not_undone(sim_hosts, foo):
    """The race the test above cannot show: the job's write lands after the poll has looked for jobs, before
    its UPDATE. Here no Job row exists at all, so only the row's own stamp (job_wrote_at) can protect it."""
    hv1 = sim_hosts["hv1"]
    present = poller.present_domains([hv1])
    read_at = timezone.now()
    readings = poller.read_hosts([hv1], present)  # foo at 1,024 MiB
    driver = driver_for(hv1.uri)
    driver.set_memory(str(foo.uuid), 2048 * 1024, live=True, config=False)
    inventory.record_domain(hv1, driver.domain(str(foo.uuid)))  # as a job does when it ends
    poller.write_readings(readings, present, read_at)
    assert Domain.objects.get(pk=foo.pk).memory_kib == 2048 * 1024
    poller.poll_hosts([hv1])  # a poll that read after the job writes as usual
    assert Domain.objects.get(pk=foo.pk).last_seen > Domain.objects.get(pk=foo.pk).job_wrote_at


def test_a_domain_a_job_is_changing_keeps_its_row_but_its_guest_figures_follow(sim_hosts, foo):
    """During a long migration the chart and the balloon figures go on; where the domain is, and its size, are
    the job's to write."""
    Job.objects.create(kind=Job.Kind.MIGRATE, domain=foo, host=foo.host, target_host=sim_hosts["hv2"], state=Job.State.RUNNING,
                       params={"memory_kib": foo.memory_kib}, actor_kind="cli", actor_label="command line")
    Domain.objects.filter(pk=foo.pk).update(memory_kib=999 * 1024, available_kib=None, unused_kib=None, actual_kib=None)
    poller.poll_hosts(list(sim_hosts.values()))
    foo.refresh_from_db()
    assert foo.memory_kib == 999 * 1024  # not the poll's to say
    assert foo.available_kib is not None and foo.unused_kib is not None and foo.actual_kib == 1024 * 1024
    assert MemorySample.objects.filter(domain=foo).exists()


def test_a_domain_restarted_outside_balloonweb_with_a_new_maxmem_shows_no_restart_pending(sim_hosts, foo):
    """virsh setmaxmem --config, then a restart by hand: the poll that sees the boot reads the config again (the
    tables showed "8192 → 4096", a restart that would change nothing, and a start would have booked the old
    size)."""
    hv1 = sim_hosts["hv1"]
    driver = driver_for(hv1.uri)
    driver.destroy(str(foo.uuid))
    driver.set_maxmem(str(foo.uuid), 8192 * 1024)
    driver.start(str(foo.uuid))
    poller.poll_hosts([hv1])
    foo.refresh_from_db()
    assert (foo.maxmem_kib, foo.config_maxmem_kib, foo.awaits_restart) == (8192 * 1024, 8192 * 1024, False)


def test_a_config_changed_by_hand_while_the_domain_runs_is_seen_within_a_refresh_round(sim_hosts, foo):
    """virsh setmaxmem --config on a running domain: no boot follows, yet within CONFIG_REFRESH_POLLS polls the
    tables say a restart is pending, and a restart books the new config (before, only the next boot showed it)."""
    hv1 = sim_hosts["hv1"]
    driver_for(hv1.uri).set_maxmem(str(foo.uuid), 2048 * 1024)
    polls = 0
    while foo.config_maxmem_kib != 2048 * 1024 and polls < poller.CONFIG_REFRESH_POLLS:
        poller.poll_hosts([hv1])
        polls += 1
        foo.refresh_from_db()
    assert (foo.maxmem_kib, foo.config_maxmem_kib, foo.awaits_restart) == (4096 * 1024, 2048 * 1024, True)


def test_a_domain_adopted_ballooned_keeps_its_config_not_its_live_size(sim_hosts):
    """Found running at 512 MiB with a config of 1,024 / 4,096 MiB: a start or restart boots it with 1,024."""
    hv1 = sim_hosts["hv1"]
    driver = driver_for(hv1.uri)
    info = driver.define_and_start(DomainConfig("found", 1024 * 1024, 4096 * 1024, 1))
    driver.set_memory(info.uuid, 512 * 1024, live=True, config=False)
    poller.poll_hosts([hv1])
    found = Domain.objects.get(name="found")
    assert (found.memory_kib, found.config_memory_kib, found.config_maxmem_kib) == (512 * 1024, 1024 * 1024, 4096 * 1024)
