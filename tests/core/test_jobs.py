"""Durable jobs against a real worker, real Redis and real libvirt: concurrency, dead workers, lost messages."""

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from datetime import timedelta

import pytest
import redis
from django.db import close_old_connections, connections
from django.utils import timezone

from balloonweb.audit.models import AuditEntry
from domains import jobs, services
from domains.autoscaler.state import build_snapshot
from domains.models import Domain, Job
from hosts.drivers import driver_for
from hosts.models import Host
from hosts.simulation import fleet
from tests.conftest import ROOT, child_environment, define_domain, virsh, virsh_dominfo, wait_for_job


def in_threads(count: int, work) -> list:
    def run(i):
        try:
            return work(i)
        finally:
            close_old_connections()
            connections.close_all()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def attempt(call):
    try:
        return call()
    except services.ServiceError as exc:
        return exc


def test_concurrent_resizes_of_one_domain_end_at_the_last_accepted(celery_worker, sim_hosts, foo, cli):
    sizes = [256 + 64 * i for i in range(20)]
    results = in_threads(20, lambda i: attempt(lambda: services.request_resize(cli, foo, f"{sizes[i]}M")))
    accepted = [r for r in results if isinstance(r, Job)]
    assert len(accepted) == 20, [str(r) for r in results if not isinstance(r, Job)]
    for job in accepted:
        wait_for_job(job)
    last = max(accepted, key=lambda j: j.pk)
    assert last.state == Job.State.SUCCEEDED
    expected_kib = last.params["target_kib"]
    assert virsh_dominfo(sim_hosts["hv1"].uri, "foo")["Used memory"] == f"{expected_kib} KiB"
    foo.refresh_from_db()
    assert foo.memory_kib == expected_kib
    # Never interleaved: no two jobs of the domain ran at once.
    finished = Job.objects.filter(domain=foo, state=Job.State.SUCCEEDED).order_by("started")
    spans = [(j.started, j.finished) for j in finished]
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    assert {j.state for j in Job.objects.filter(domain=foo)} <= {Job.State.SUCCEEDED, Job.State.CANCELLED}


def all_ran_or_found_no_room(results: list, fitting: int) -> None:
    """`fitting` requests were accepted and their jobs succeeded; the others were refused for room on hv1."""
    accepted = [r for r in results if isinstance(r, Job)]
    refused = [r for r in results if isinstance(r, services.Conflict)]
    assert (len(accepted), len(refused)) == (fitting, len(results) - fitting)
    assert all(r.code == "no_room" and "hv1 has no room" in r.message for r in refused)
    for job in accepted:
        assert wait_for_job(job).state == Job.State.SUCCEEDED


def test_concurrent_grows_never_exceed_the_host(celery_worker, sim_hosts, cli):
    hv1 = sim_hosts["hv1"]  # 8192 MiB, 512 MiB reserve: 7680 MiB usable
    domains = [define_domain(hv1, f"g{i}", 256, 1024) for i in range(20)]  # 5120 MiB in use
    # 2560 MiB of room, 768 MiB per grow: three fit.
    all_ran_or_found_no_room(in_threads(20, lambda i: attempt(lambda: services.request_resize(cli, domains[i], "1024"))), 3)
    running = sum(d.memory_kib for d in Domain.objects.filter(host=hv1))
    assert running <= hv1.usable_kib
    assert running == (17 * 256 + 3 * 1024) * 1024


def test_concurrent_creations_never_exceed_the_host(celery_worker, sim_hosts, cli):
    """A queued creation books its memory until its domain exists (it once booked nothing, and twenty
    creations of 1 GiB were all accepted on a host with room for seven)."""
    hv1 = sim_hosts["hv1"]  # 7680 MiB usable, nothing running
    all_ran_or_found_no_room(in_threads(20, lambda i: attempt(lambda: services.request_create(cli, hv1, f'name = "new{i}"\nmemory = 1024\n'))), 7)
    assert sum(Domain.objects.filter(host=hv1).values_list("memory_kib", flat=True)) == 7 * 1024 * 1024
    assert services.booked_kib(hv1) == 7 * 1024 * 1024  # the domains, now that their jobs have ended


def test_a_killed_worker_leaves_no_job_running_after_the_sweep(sim_hosts, foo, cli, start_worker, settings):
    # A queue of its own, so that only the victim (and later the rescuer) can take the job.
    Host.objects.filter(pk=foo.host_id).update(queue_group="victim")
    victim = start_worker("victim", "jobs.victim", concurrency=1)
    daemon = fleet.simhost("hv1").pid(fleet.simhost("hv1").daemon_pid_file)
    os.kill(daemon, 19)  # SIGSTOP: the libvirt call hangs, so the job is caught mid-flight
    try:
        job = services.request_resize(cli, foo, "512")
        deadline = time.monotonic() + 15
        while Job.objects.get(pk=job.pk).state != Job.State.RUNNING and time.monotonic() < deadline:
            time.sleep(0.05)
        assert Job.objects.get(pk=job.pk).state == Job.State.RUNNING
        victim.kill()
    finally:
        os.kill(daemon, 18)  # SIGCONT
    start_worker("rescuer", "jobs.victim", concurrency=1)
    time.sleep(settings.RESIZE_TIME_LIMIT + 6)  # the dead worker's heartbeat is now too old
    running = Job.objects.get(pk=job.pk)
    counts = jobs.sweep()
    assert counts["requeued"] == 1, (running.state, running.heartbeat, running.log, counts)
    job = wait_for_job(job)
    assert job.state == Job.State.SUCCEEDED and "stopped answering; queued again" in job.log
    assert not Job.objects.filter(state=Job.State.RUNNING).exists()
    assert virsh_dominfo(sim_hosts["hv1"].uri, "foo")["Used memory"] == "524288 KiB"


def test_a_hung_hypervisor_call_is_ended_by_the_job_time_limit_before_the_sweep_takes_the_job_again(sim_hosts, foo, cli, start_worker, settings):
    """The worker is not killed by anyone here: its call hangs (libvirtd stopped), Celery kills it at the job's
    time limit, and only then may the sweep queue the job again; the hung call cannot come back afterwards and
    end a job that another attempt is running."""
    Host.objects.filter(pk=foo.host_id).update(queue_group="hung")
    worker = start_worker("hung", "jobs.hung", concurrency=1)
    daemon = fleet.simhost("hv1").pid(fleet.simhost("hv1").daemon_pid_file)
    os.kill(daemon, 19)  # SIGSTOP
    try:
        job = services.request_resize(cli, foo, "512")
        deadline = time.monotonic() + settings.RESIZE_TIME_LIMIT + 20
        while "Hard time limit" not in worker.log.read_text(errors="replace") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert f"Hard time limit ({settings.RESIZE_TIME_LIMIT:.1f}s) exceeded" in worker.log.read_text(errors="replace")
        caught = Job.objects.get(pk=job.pk)
        assert caught.state == Job.State.RUNNING, (caught.state, caught.attempts, caught.log, caught.error)  # until the sweep comes
    finally:
        os.kill(daemon, 18)  # SIGCONT
    time.sleep(jobs.SWEEP_MARGIN_S + 1)
    assert jobs.sweep()["requeued"] == 1
    job = wait_for_job(job)
    assert (job.state, job.attempts) == (Job.State.SUCCEEDED, 2) and "stopped answering; queued again" in job.log
    assert virsh_dominfo(sim_hosts["hv1"].uri, "foo")["Used memory"] == "524288 KiB"


def test_what_a_worker_taken_for_lost_writes_late_is_dropped(sim_hosts, foo, cli):
    no_worker_takes_jobs_of(foo.host)
    job = services.request_resize(cli, foo, "512")
    assert jobs.claim(job.pk) == jobs.Claim.RUN
    first = Job.objects.get(pk=job.pk)
    long_ago = timezone.now() - timedelta(minutes=5)
    Job.objects.filter(pk=job.pk).update(heartbeat=long_ago, started=long_ago)
    assert jobs.sweep()["requeued"] == 1
    assert jobs._finish(first, Job.State.FAILED, error="late") is False  # queued again: not the late worker's to end
    assert jobs.claim(job.pk) == jobs.Claim.RUN  # a second worker runs it now
    assert jobs._finish(first, Job.State.FAILED, error="late") is False
    jobs._log(first, "late line")  # appended, and the sweep's line stays
    again = Job.objects.get(pk=job.pk)
    assert (again.state, again.attempts) == (Job.State.RUNNING, 2)
    assert "stopped answering; queued again" in again.log and again.log.rstrip().endswith("late line")


def test_the_sweep_leaves_a_job_whose_worker_has_not_reached_its_time_limit(sim_hosts, foo, cli):
    """No heartbeat for a while is not enough: until Celery has killed it at its time limit from the start, the
    worker may still come back from a slow call."""
    no_worker_takes_jobs_of(foo.host)
    job = services.request_resize(cli, foo, "512")
    assert jobs.claim(job.pk) == jobs.Claim.RUN
    Job.objects.filter(pk=job.pk).update(heartbeat=timezone.now() - timedelta(minutes=5))  # but started just now
    assert jobs.sweep()["requeued"] == 0 and Job.objects.get(pk=job.pk).state == Job.State.RUNNING


def test_a_job_waiting_for_another_job_of_its_domain_is_not_sent_again_by_the_sweep(sim_hosts, foo, cli):
    """Its task retries every half second while it waits; the sweep sent a duplicate message every REQUEUE_AFTER
    on top, each one another claim under the domain's row lock."""
    no_worker_takes_jobs_of(foo.host)
    first = services.request_resize(cli, foo, "512")
    second = services.request_set_maxmem(cli, foo, "8192")
    assert jobs.claim(first.pk) == jobs.Claim.RUN
    long_ago = timezone.now() - timedelta(minutes=1)
    Job.objects.filter(pk=second.pk).update(created=long_ago, enqueued_at=long_ago)
    assert jobs.claim(second.pk) == jobs.Claim.BUSY
    assert jobs.sweep()["resent"] == 0


def test_a_lost_migration_whose_destination_does_not_answer_waits_for_it_before_it_fails(sim_hosts, foo):
    """Only the destination can tell whether the domain arrived: the sweep asks again for DESTINATION_GRACE_S
    rather than failing a move that may have ended there."""
    silent = Host.objects.create(name="silent", uri="test+unix:///default?socket=/nonexistent/libvirt-sock")
    job = Job.objects.create(kind=Job.Kind.MIGRATE, domain=foo, host=foo.host, target_host=silent, state=Job.State.RUNNING,
                             params={"memory_kib": foo.memory_kib}, actor_kind="cli", actor_label="command line", attempts=1,
                             started=timezone.now() - timedelta(minutes=30), heartbeat=timezone.now() - timedelta(seconds=60))
    assert jobs.sweep()["waiting"] == 1 and Job.objects.get(pk=job.pk).state == Job.State.RUNNING
    Job.objects.filter(pk=job.pk).update(heartbeat=timezone.now() - timedelta(seconds=jobs.DESTINATION_GRACE_S + 1000))
    assert jobs.sweep()["failed"] == 1
    job.refresh_from_db()
    assert job.state == Job.State.FAILED and "and so did silent: where foo runs is known once a poll reaches both hosts" in job.error


def test_a_lost_migration_whose_copy_waits_paused_on_the_destination_did_not_move_the_domain(sim_hosts, foo):
    """The worker died mid-move: the destination holds the incoming copy, paused, and the source still runs the
    domain. The sweep took any copy on the destination for an arrival and recorded the domain there."""
    hv1, hv2 = sim_hosts["hv1"], sim_hosts["hv2"]
    driver_for(hv2.uri).define_xml_and_start(driver_for(hv1.uri).domain_xml(str(foo.uuid)))
    virsh(hv2.uri, "suspend", "foo")
    long_ago = timezone.now() - timedelta(minutes=30)
    job = Job.objects.create(kind=Job.Kind.MIGRATE, domain=foo, host=hv1, target_host=hv2, state=Job.State.RUNNING,
                             params={"memory_kib": foo.memory_kib}, actor_kind="cli", actor_label="command line", attempts=1,
                             started=long_ago, heartbeat=long_ago)
    assert jobs.sweep()["failed"] == 1
    assert Job.objects.get(pk=job.pk).state == Job.State.FAILED and Domain.objects.get(pk=foo.pk).host == hv1
    # Paused there with the source empty, it did arrive (a domain migrated paused stays paused).
    driver_for(hv1.uri).destroy(str(foo.uuid))
    driver_for(hv1.uri).undefine(str(foo.uuid))
    Job.objects.filter(pk=job.pk).update(state=Job.State.RUNNING)
    assert jobs.sweep()["succeeded"] == 1 and Domain.objects.get(pk=foo.pk).host == hv2


def test_a_lost_migration_with_a_stale_shut_off_copy_on_the_destination_did_not_move_the_domain(sim_hosts, foo):
    """A definition left on the destination by an earlier move (shut off) was taken for an arrival: the job
    succeeded and the domain, running on its source, was recorded shut off on the destination."""
    hv1, hv2 = sim_hosts["hv1"], sim_hosts["hv2"]
    driver_for(hv2.uri).conn.defineXML(driver_for(hv1.uri).domain_xml(str(foo.uuid)))
    long_ago = timezone.now() - timedelta(minutes=30)
    job = Job.objects.create(kind=Job.Kind.MIGRATE, domain=foo, host=hv1, target_host=hv2, state=Job.State.RUNNING,
                             params={"memory_kib": foo.memory_kib}, actor_kind="cli", actor_label="command line", attempts=1,
                             started=long_ago, heartbeat=long_ago)
    assert jobs.sweep()["failed"] == 1
    foo.refresh_from_db()
    assert (foo.host, foo.state) == (hv1, "running")


def test_a_queued_job_follows_its_host_to_another_queue_group(sim_hosts, foo, cli, start_worker):
    """Queued while no worker read its group's queue; the host is then moved to a group that has workers. The
    sweep sent it to the old queue for ever, and it held its booking."""
    no_worker_takes_jobs_of(foo.host)
    job = services.request_resize(cli, foo, "512")
    Job.objects.filter(pk=job.pk).update(created=timezone.now() - timedelta(minutes=1), enqueued_at=None)
    Host.objects.filter(pk=foo.host_id).update(queue_group="moved")
    start_worker("moved", "jobs.moved", concurrency=1)
    assert jobs.sweep()["resent"] == 1
    job = wait_for_job(job)
    assert (job.state, job.queue) == (Job.State.SUCCEEDED, "jobs.moved")


def test_jobs_queued_while_redis_restarts_still_run(sim_hosts, foo, tmp_path):
    """A private Redis (the shared one stays up for everyone else): one job's message is lost in the restart,
    another is requested while Redis is down; the sweep sends both again and a worker runs them."""
    port = 6390 + os.getpid() % 50
    url = f"redis://127.0.0.1:{port}/0"
    server = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    env = child_environment(REDIS_URL=url)

    def start_redis():
        process = subprocess.Popen(server, stdout=subprocess.DEVNULL)
        for _ in range(100):
            try:
                if redis.Redis.from_url(url).ping():
                    return process
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis did not start")

    def manage(*args):
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    bar = define_domain(sim_hosts["hv1"], "bar", 1024, 2048)
    redis_process = start_redis()
    lost = int(manage("xm", "mem-set", "foo", "600", "--no-wait").stdout)  # enqueued, no worker yet
    redis_process.terminate()
    redis_process.wait()
    down = int(manage("xm", "mem-set", "bar", "700", "--no-wait").stdout)  # the broker is down: stays queued
    redis_process = start_redis()  # empty: the first message is gone
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "balloonweb", "worker", "-Q", "jobs", "-c", "1", "-n", "private@%h", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        time.sleep(4)  # REQUEUE_AFTER is 3 s in tests
        assert Job.objects.get(pk=lost).state == Job.State.QUEUED
        sweep = manage("jobs", "sweep")
        assert "2 re-sent" in sweep.stdout, sweep.stderr
        assert wait_for_job(Job.objects.get(pk=lost)).state == Job.State.SUCCEEDED
        assert wait_for_job(Job.objects.get(pk=down)).state == Job.State.SUCCEEDED
        assert virsh_dominfo(sim_hosts["hv1"].uri, "foo")["Used memory"] == f"{600 * 1024} KiB"
        assert virsh_dominfo(sim_hosts["hv1"].uri, "bar")["Used memory"] == f"{700 * 1024} KiB"
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=20)
        redis_process.terminate()
        redis_process.wait()


def no_worker_takes_jobs_of(host: Host) -> None:
    """Jobs of this host go to a queue no worker reads, so that the test runs them itself."""
    Host.objects.filter(pk=host.pk).update(queue_group="unread")


def test_a_job_runs_once_even_if_its_message_arrives_twice(sim_hosts, foo, cli):
    no_worker_takes_jobs_of(foo.host)
    job = services.request_resize(cli, foo, "512")
    assert jobs.run_job(job.pk) == Job.State.SUCCEEDED
    assert jobs.run_job(job.pk) == jobs.Claim.SKIP
    assert Job.objects.get(pk=job.pk).attempts == 1


def test_a_cancelled_job_does_not_run(sim_hosts, foo, cli):
    no_worker_takes_jobs_of(foo.host)
    job = services.request_resize(cli, foo, "512")
    services.cancel_job(cli, job)
    assert jobs.run_job(job.pk) == jobs.Claim.SKIP
    assert driver_for(sim_hosts["hv1"].uri).domain(str(foo.uuid)).memory_kib == 1024 * 1024
    with pytest.raises(services.Conflict, match="only a queued job or a running migration can be cancelled"):
        services.cancel_job(cli, job)


def test_a_running_migration_asked_to_stop_leaves_the_domain_where_it_was(celery_worker, sim_hosts, foo, cli):
    hv1, hv2 = sim_hosts["hv1"], sim_hosts["hv2"]
    # A slow link, so that the move is still on its way when the stop comes: foo's 1 GiB takes 16 s.
    fleet.simhost("hv1").describe(memory_mib=8192, cpus=16, migration_mib_s=64)
    job = services.request_migrate(cli, foo, hv2)
    deadline = time.monotonic() + 30
    while job.state != Job.State.RUNNING or job.progress == 0:
        assert time.monotonic() < deadline, f"the migration never got under way: {job.state} {job.log}"
        time.sleep(0.1)
        job.refresh_from_db()

    asked = services.cancel_job(cli, job)
    assert (asked.state, asked.stop_requested_by) == (Job.State.RUNNING, str(cli))
    with pytest.raises(services.Conflict, match=f"job {job.pk} is already stopping, as {cli} asked"):
        services.cancel_job(cli, job)
    job = wait_for_job(job)
    assert (job.state, job.error_code) == (Job.State.CANCELLED, "cancelled")
    assert job.error.startswith(f"cancelled by {cli}, stopped on request at ")
    assert job.error.endswith(" %: foo goes on running on hv1") and job.progress < 90
    # Where it was, as the hypervisors and the database say, and still running.
    assert driver_for(hv1.uri).domain(str(foo.uuid)).state == "running"
    assert driver_for(hv2.uri).domain(str(foo.uuid)) is None
    foo.refresh_from_db()
    assert foo.host == hv1
    stop = AuditEntry.objects.get(action="job.cancel", job_id=job.pk)
    assert (stop.result, stop.message) == (AuditEntry.Result.SUCCEEDED, "asked the running migration to stop")
    outcome = AuditEntry.objects.get(action="job.migrate", job_id=job.pk)
    assert (outcome.result, outcome.message) == (AuditEntry.Result.FAILED, job.error)
    # The autoscaler counts the stopped move as one: it does not start it again within the cooldown.
    snapshot = build_snapshot().snapshot
    assert next(d for d in snapshot.domains if d.id == foo.pk).last_migrated_at is not None


def test_a_job_that_ran_once_and_was_queued_again_cannot_be_cancelled(sim_hosts, foo, cli):
    """Its worker set the balloon, then stopped answering: a cancel of the requeued job said it had not."""
    no_worker_takes_jobs_of(foo.host)
    job = services.request_resize(cli, foo, "512")
    assert jobs.claim(job.pk) == jobs.Claim.RUN
    driver_for(foo.host.uri).set_memory(str(foo.uuid), 512 * 1024, live=True, config=False)
    long_ago = timezone.now() - timedelta(minutes=5)
    Job.objects.filter(pk=job.pk).update(heartbeat=long_ago, started=long_ago)
    assert jobs.sweep()["requeued"] == 1
    with pytest.raises(services.Conflict, match="has run once already .* it may have made its change"):
        services.cancel_job(cli, job)
    assert Job.objects.get(pk=job.pk).state == Job.State.QUEUED


def test_a_grow_whose_domain_cannot_be_read_afterwards_keeps_its_size_booked(sim_hosts, foo, cli, monkeypatch):
    """The read after a successful resize failed (a connection dropped): the row kept the old size while the
    job's booking ended, and the grow's room looked free to the next request."""
    no_worker_takes_jobs_of(foo.host)
    real_driver_for = jobs.driver_for

    class ReadFails:  # the real driver, whose reads fail once the balloon is set
        def __init__(self, uri):
            self.driver = real_driver_for(uri)

        def __getattr__(self, name):
            return getattr(self.driver, name)

        def domain(self, uuid):
            raise jobs.HostUnreachable("the connection dropped")

    job = services.request_resize(cli, foo, "3G")
    monkeypatch.setattr(jobs, "driver_for", ReadFails)
    jobs.run_job(job.pk)
    monkeypatch.undo()
    assert Job.objects.get(pk=job.pk).state == Job.State.SUCCEEDED
    assert Domain.objects.get(pk=foo.pk).memory_kib == 3 * 1024 * 1024
    assert services.booked_kib(foo.host) >= 3 * 1024 * 1024


def test_a_lost_create_whose_domain_runs_succeeds_with_its_row(sim_hosts, cli):
    """The worker died after the domain started, before its row was written: the sweep failed the job, freed
    its booking, and the next poll adopted the domain as a stranger (a retry then found the name taken)."""
    from hosts.drivers import DomainConfig

    hv1 = sim_hosts["hv1"]
    no_worker_takes_jobs_of(hv1)
    job = services.request_create(cli, hv1, 'name = "newcomer"\nmemory = 512\n')
    assert jobs.claim(job.pk) == jobs.Claim.RUN
    driver_for(hv1.uri).define_and_start(DomainConfig("newcomer", 512 * 1024, 512 * 1024))
    long_ago = timezone.now() - timedelta(minutes=30)
    Job.objects.filter(pk=job.pk).update(heartbeat=long_ago, started=long_ago)
    assert jobs.sweep()["succeeded"] == 1
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED and job.domain.name == "newcomer" and job.domain.host == hv1
    assert "the worker stopped answering, but newcomer runs on hv1" in job.log


def test_a_lost_start_whose_domain_runs_succeeds(sim_hosts, foo, cli):
    driver_for(foo.host.uri).destroy(str(foo.uuid))
    Domain.objects.filter(pk=foo.pk).update(state=Domain.State.SHUTOFF)
    no_worker_takes_jobs_of(foo.host)
    job = services.request_power(cli, Domain.objects.get(pk=foo.pk), "start")
    assert jobs.claim(job.pk) == jobs.Claim.RUN
    driver_for(foo.host.uri).start(str(foo.uuid))  # the worker started it, then died
    long_ago = timezone.now() - timedelta(minutes=30)
    Job.objects.filter(pk=job.pk).update(heartbeat=long_ago, started=long_ago)
    assert jobs.sweep()["succeeded"] == 1
    assert Domain.objects.get(pk=foo.pk).state == Domain.State.RUNNING


def test_a_migration_to_a_host_that_does_not_answer_names_that_host(sim_hosts, foo, cli):
    """"host unreachable: hv1 does not answer" sent the operator to fix the healthy source."""
    silent = Host.objects.create(name="silent", uri="test+unix:///default?socket=/nonexistent/libvirt-sock",
                                 status=Host.Status.ONLINE, total_kib=8 * 1024 * 1024, reserved_kib=0)
    no_worker_takes_jobs_of(foo.host)
    job = services.request_migrate(cli, foo, silent)
    jobs.run_job(job.pk)
    job.refresh_from_db()
    assert (job.state, job.error) == (Job.State.FAILED, "host unreachable: silent does not answer")


def test_a_lost_restart_whose_domain_booted_again_succeeds(sim_hosts, foo, cli):
    no_worker_takes_jobs_of(foo.host)
    job = services.request_power(cli, foo, "restart", force=True)
    assert jobs.claim(job.pk) == jobs.Claim.RUN
    driver = driver_for(foo.host.uri)
    driver.destroy(str(foo.uuid))  # the worker turned it off and on again, then died
    driver.start(str(foo.uuid))
    long_ago = timezone.now() - timedelta(minutes=30)
    Job.objects.filter(pk=job.pk).update(heartbeat=long_ago, started=long_ago)
    assert jobs.sweep()["succeeded"] == 1
    assert "foo runs again on hv1" in Job.objects.get(pk=job.pk).log
