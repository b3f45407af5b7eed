"""Real guests under QEMU (TCG) with virtio-balloon: resizes and migrations through BalloonWeb's jobs, checked
against what the guest itself reports on its console and what `virsh dommemstat` says."""

import queue
import subprocess
import time

import pytest

from domains import maintenance, services
from domains.models import Domain, Job
from domains.poller import poll_hosts
from hosts.drivers import AboveMaxMemory, driver_for
from hosts.drivers.events import subscribe
from hosts.drivers.freshness import balloon_stats_stale
from hosts.lab import setup
from tests.conftest import virsh, virsh_dominfo, wait_for_job
from tests.lab.conftest import FULL_KIB, guest_report

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("celery_worker")]

MIB = 1024


def dommemstat(uri: str, name: str) -> dict[str, int]:
    pairs = (line.split() for line in virsh(uri, "dommemstat", name).splitlines() if line.strip())
    return {key: int(value) for key, value in pairs}


def wait_for_actual(uri: str, name: str, kib: int, timeout_s: float = 15) -> dict[str, int]:
    """dommemstat's `actual` asks QEMU itself: it shows the balloon as it moves."""
    deadline = time.monotonic() + timeout_s
    while True:
        stats = dommemstat(uri, name)
        if stats["actual"] == kib or time.monotonic() > deadline:
            return stats
        time.sleep(0.2)


def wait_for_libvirts_figure(uri: str, uuid: str, kib: int, timeout_s: float = 15) -> int:
    """libvirt's own figure (info(), bulk stats' balloon.current, what the poller reads) follows QEMU's balloon
    events, which QEMU sends at most once a second: it trails dommemstat by up to a second."""
    deadline = time.monotonic() + timeout_s
    while True:
        current = next(s.actual_kib for s in driver_for(uri).bulk_stats() if s.uuid == uuid)
        if current == kib or time.monotonic() > deadline:
            return current
        time.sleep(0.1)


def test_a_resize_job_shrinks_the_guests_own_memtotal(labvm1, cli):
    uri = labvm1.host.uri
    before = guest_report(labvm1)

    job = wait_for_job(services.request_resize(cli, labvm1, "256M"), timeout=60)
    assert job.state == Job.State.SUCCEEDED, job.error

    # The guest gives up exactly the pages the balloon took: MemTotal drops by the 256 MiB (the balloon moves
    # in steps, so wait for the last one).
    guest_report(labvm1, lambda r: r.memtotal_kib == before.memtotal_kib - 256 * MIB)
    assert wait_for_actual(uri, "labvm1", 256 * MIB)["actual"] == 256 * MIB
    # QEMU's current memory is the balloon's actual size, which libvirt learns from the guest's balloon event;
    # the next poll records it.
    assert wait_for_libvirts_figure(uri, str(labvm1.uuid), 256 * MIB) == 256 * MIB
    poll_hosts([labvm1.host])
    labvm1.refresh_from_db()
    assert labvm1.memory_kib == labvm1.actual_kib == 256 * MIB

    job = wait_for_job(services.request_resize(cli, labvm1, "512M"), timeout=60)
    assert job.state == Job.State.SUCCEEDED, job.error
    guest_report(labvm1, lambda r: r.memtotal_kib == before.memtotal_kib)
    assert wait_for_actual(uri, "labvm1", FULL_KIB)["actual"] == FULL_KIB


def test_above_maxmem_is_refused_and_nothing_changes(labvm1, cli):
    uri = labvm1.host.uri
    before_stats, before_report = dommemstat(uri, "labvm1"), guest_report(labvm1)
    jobs_before = Job.objects.count()

    with pytest.raises(services.BadRequest, match="above the maxmem of labvm1 .512 MiB."):
        services.request_resize(cli, labvm1, "600M")
    with pytest.raises(AboveMaxMemory, match="above the maxmem of labvm1"):
        driver_for(uri).set_memory(str(labvm1.uuid), 600 * MIB, live=True, config=False)
    # The hypervisor's own refusal, without BalloonWeb's check in front of it:
    refused = subprocess.run(["virsh", "-c", uri, "setmem", "labvm1", "600M", "--live"], capture_output=True, text=True)
    assert refused.returncode != 0 and "cannot set memory higher than max memory" in refused.stderr

    time.sleep(2)  # a balloon that was going to move would have moved by now
    assert Job.objects.count() == jobs_before
    assert dommemstat(uri, "labvm1")["actual"] == before_stats["actual"] == FULL_KIB
    assert guest_report(labvm1).memtotal_kib == before_report.memtotal_kib


def test_a_live_migration_job_keeps_the_guest_running_and_its_balloon(labvm2, lab_hosts, cli):
    lab1, lab2 = lab_hosts["lab1"], lab_hosts["lab2"]
    full = guest_report(labvm2)
    assert wait_for_job(services.request_resize(cli, labvm2, "384M"), timeout=60).state == Job.State.SUCCEEDED
    ballooned = guest_report(labvm2, lambda r: r.memtotal_kib == full.memtotal_kib - 128 * MIB)
    assert wait_for_actual(lab2.uri, "labvm2", 384 * MIB)["actual"] == 384 * MIB
    # Migrate at once, while libvirt's own figure may still trail the guest (its balloon events come at most
    # once a second): the destination must still end up with the guest's true size, not the stale one.

    job = wait_for_job(services.request_migrate(cli, Domain.objects.get(pk=labvm2.pk), lab1), timeout=120)
    assert job.state == Job.State.SUCCEEDED, f"{job.error}\n{job.log}"
    assert setup.where(str(labvm2.uuid)).name == "lab1"
    assert driver_for(lab2.uri).domain(str(labvm2.uuid)) is None  # undefined on the source
    assert driver_for(lab1.uri).domain(str(labvm2.uuid)).state == "running"

    # Same guest, not a reboot: its uptime goes on from where it was, on lab1's console.
    arrived = guest_report(labvm2, lambda r: r.uptime_s > ballooned.uptime_s)
    assert arrived.uptime_s < ballooned.uptime_s + job.duration_s + 30
    assert "LAB ready" not in setup.guest_console(str(labvm2.uuid)).read_text(errors="replace")
    # The balloon stayed where it was: libvirt on the destination (QEMU's figure and its own) and the guest agree.
    assert dommemstat(lab1.uri, "labvm2")["actual"] == 384 * MIB
    assert driver_for(lab1.uri).domain(str(labvm2.uuid)).memory_kib == 384 * MIB
    assert arrived.memtotal_kib == ballooned.memtotal_kib
    labvm2.refresh_from_db()
    assert (labvm2.host.name, labvm2.memory_kib) == ("lab1", 384 * MIB)
    # The destination keeps a config of its own: its console file, not the source host's.
    assert "/hosts/lab1/console/" in driver_for(lab1.uri).domain_xml(str(labvm2.uuid))

    back = wait_for_job(services.request_migrate(cli, labvm2, lab2), timeout=120)
    assert back.state == Job.State.SUCCEEDED, f"{back.error}\n{back.log}"
    assert guest_report(labvm2, lambda r: r.uptime_s > arrived.uptime_s).memtotal_kib == ballooned.memtotal_kib


def test_maintenance_moves_the_guest_live_and_the_move_is_not_a_boot(labvm2, lab_hosts, cli):
    """lab2 is emptied for maintenance: its guest goes on running on lab1 (its own uptime goes on), the inventory
    does not take the move for a boot (which would drop the autoscaler's watch of its balloon), and lab2 takes
    nothing until the maintenance ends."""
    lab1, lab2 = lab_hosts["lab1"], lab_hosts["lab2"]
    booted_at = Domain.objects.get(pk=labvm2.pk).booted_at
    before = guest_report(labvm2)
    done = maintenance.start(cli, lab2)
    assert done.staying == [] and len(done.jobs) == 1
    job = wait_for_job(done.jobs[0], timeout=120)
    assert job.state == Job.State.SUCCEEDED, f"{job.error}\n{job.log}"
    assert setup.where(str(labvm2.uuid)).name == "lab1"
    arrived = guest_report(labvm2, lambda r: r.uptime_s > before.uptime_s)
    assert arrived.memtotal_kib == before.memtotal_kib
    poll_hosts([lab1, lab2])
    moved = Domain.objects.get(pk=labvm2.pk)
    assert (moved.host.name, moved.booted_at) == ("lab1", booted_at)
    with pytest.raises(services.Conflict, match="lab2 is in maintenance"):
        services.request_migrate(cli, moved, lab2)
    maintenance.end(cli, lab2)
    back = wait_for_job(services.request_migrate(cli, moved, lab2), timeout=120)
    assert back.state == Job.State.SUCCEEDED, f"{back.error}\n{back.log}"


def test_a_running_migration_stopped_from_the_console_leaves_the_guest_running_where_it_was(labvm1, lab_hosts, cli):
    lab1, lab2 = lab_hosts["lab1"], lab_hosts["lab2"]
    before = guest_report(labvm1)
    # A slow link, so that the move is still under way when the stop comes: 1 MiB/s for the guest's pages.
    virsh(lab1.uri, "migrate-setspeed", "labvm1", "1")
    try:
        job = services.request_migrate(cli, labvm1, lab2)
        deadline = time.monotonic() + 60
        while job.state != Job.State.RUNNING or job.progress == 0:  # libvirt reports the first pages sent
            assert time.monotonic() < deadline, f"the migration never got under way: {job.state} {job.log}"
            time.sleep(0.2)
            job.refresh_from_db()
        assert job.progress < 100
        services.cancel_job(cli, job)
        job = wait_for_job(job, timeout=60)
    finally:
        virsh(lab1.uri, "migrate-setspeed", "labvm1", "8796093022207")  # libvirt's "unlimited"
    assert job.state == Job.State.CANCELLED, f"{job.error}\n{job.log}"
    assert job.error.startswith(f"cancelled by {cli}, stopped on request at ")
    assert job.error.endswith(" %: labvm1 goes on running on lab1")
    assert "canceled by client" in job.log  # libvirt's own words
    # Still on lab1 and running, not on lab2: the hypervisors, the database and the guest itself agree.
    assert setup.where(str(labvm1.uuid)).name == "lab1"
    assert driver_for(lab2.uri).domain(str(labvm1.uuid)) is None
    assert virsh_dominfo(lab1.uri, "labvm1")["State"] == "running"
    labvm1.refresh_from_db()
    assert labvm1.host.name == "lab1"
    after = guest_report(labvm1, lambda r: r.uptime_s > before.uptime_s + 1)
    assert after.memtotal_kib == before.memtotal_kib  # the same guest, not rebooted, at its size


def test_bulk_stats_and_the_poller_read_the_guests_own_figures(labvm1, lab_hosts):
    lab1 = lab_hosts["lab1"]
    report = guest_report(labvm1)
    stats = next(s for s in driver_for(lab1.uri).bulk_stats() if s.name == "labvm1")

    # virtio-balloon's "available" is the guest's MemTotal; "unused" its MemFree (the workload holds it steady).
    assert stats.available_kib == report.memtotal_kib
    assert abs(stats.unused_kib - report.memfree_kib) < 4 * MIB
    assert stats.actual_kib == FULL_KIB and stats.last_update > time.time() - 10

    time.sleep(setup.stats_period_s() + 1.5)
    later = next(s for s in driver_for(lab1.uri).bulk_stats() if s.name == "labvm1")
    assert later.last_update > stats.last_update
    assert not balloon_stats_stale(stats.last_update, later.last_update)

    poll_hosts([lab1])
    labvm1.refresh_from_db()
    assert labvm1.available_kib == report.memtotal_kib and labvm1.actual_kib == FULL_KIB
    assert labvm1.stats_last_update >= later.last_update and not labvm1.stats_stale


def test_balloon_events_follow_a_resize_as_it_happens(labvm1):
    uri, uuid = labvm1.host.uri, str(labvm1.uuid)
    events = queue.Queue()
    subscription = subscribe(uri, events.put)
    try:
        driver_for(uri).set_memory(uuid, 320 * MIB, live=True, config=False)
        sizes = []
        deadline = time.monotonic() + 15
        while not sizes or sizes[-1] != 320 * MIB:
            event = events.get(timeout=max(0.1, deadline - time.monotonic()))
            if event.kind == "balloon" and event.uuid == uuid:
                sizes.append(event.actual_kib)
        assert sizes[-1] == 320 * MIB and all(320 * MIB <= s < FULL_KIB for s in sizes)
    finally:
        subscription.close()
        driver_for(uri).set_memory(uuid, FULL_KIB, live=True, config=False)


def test_the_events_process_records_a_moving_balloon_before_any_poll(labvm1):
    """`manage.py events`' loop: the Domain row's actual size follows the balloon with no poll in between."""
    import threading

    from domains.events import follow_events

    uri, uuid = labvm1.host.uri, str(labvm1.uuid)
    stop = threading.Event()
    follower = threading.Thread(target=follow_events, args=(stop,), daemon=True)
    follower.start()
    try:
        time.sleep(1)  # the subscription is made at the loop's first pass
        driver_for(uri).set_memory(uuid, 288 * MIB, live=True, config=False)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            labvm1.refresh_from_db()
            if labvm1.actual_kib == 288 * MIB:
                break
            time.sleep(0.1)
        assert labvm1.actual_kib == 288 * MIB
    finally:
        stop.set()
        follower.join(timeout=15)
        driver_for(uri).set_memory(uuid, FULL_KIB, live=True, config=False)
