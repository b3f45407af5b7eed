"""The seed's Xen walkthrough, with the `xm` command, real workers and real libvirt, checked with virsh."""

import signal
import subprocess
import sys
import time

import pytest

from domains.models import Domain, Job
from hosts.simulation import fleet
from tests.conftest import ROOT, child_environment, virsh, virsh_dominfo, wait_for_job

pytestmark = pytest.mark.usefixtures("celery_worker")


def xm(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "xm", *args], cwd=ROOT, env=child_environment(), capture_output=True, text=True, timeout=timeout
    )


def test_the_walkthrough(sim_hosts, tmp_path):
    config = tmp_path / "foo.cfg"
    config.write_text('name   = "foo"\nmemory = 1024\nmaxmem = 4096\nvcpus  = 1\n')
    created = xm("create", str(config), "--host", "hv1")
    assert created.returncode == 0, created.stderr
    hv1 = sim_hosts["hv1"].uri

    listing = xm("list").stdout.splitlines()
    assert listing[0].split() == ["Name", "ID", "Mem(MiB)", "VCPUs", "State", "Time(s)", "MaxMem(MiB)", "Host"]
    foo = next(line.split() for line in listing if line.startswith("foo "))
    assert foo[2:5] == ["1024", "1", "r-----"] and foo[6:] == ["4096", "hv1"]

    shrink = xm("mem-set", "foo", "512")
    assert shrink.returncode == 0, shrink.stderr
    assert virsh_dominfo(hv1, "foo")["Used memory"] == "524288 KiB"

    grow = xm("mem-set", "foo", "4096")
    assert grow.returncode == 0, grow.stderr
    assert virsh_dominfo(hv1, "foo")["Used memory"] == "4194304 KiB"

    too_much = xm("mem-set", "foo", "5000")
    assert too_much.returncode == 1
    assert too_much.stderr.strip() == (
        "xm: 5,000 MiB is above the maxmem of foo (4,096 MiB); raise maxmem first (xm mem-max foo 5000), "
        "which a running domain takes at its next boot"
    )
    assert virsh_dominfo(hv1, "foo")["Used memory"] == "4194304 KiB"

    moved = xm("migrate", "-l", "foo", "hv2")  # xm's short --live
    assert moved.returncode == 0, moved.stderr
    assert "simulated move" in moved.stdout
    hv2 = sim_hosts["hv2"].uri
    assert virsh_dominfo(hv2, "foo")["State"] == "running"
    assert virsh_dominfo(hv2, "foo")["Used memory"] == "4194304 KiB"
    assert "foo" not in subprocess.run(["virsh", "-c", hv1, "list", "--all", "--name"], capture_output=True, text=True).stdout
    assert Domain.objects.get(name="foo").host.name == "hv2"


def test_xm_list_marks_the_domains_of_a_host_that_does_not_answer(sim_hosts, tmp_path):
    from domains.poller import poll_hosts
    from hosts.models import Host

    config = tmp_path / "foo.cfg"
    config.write_text('name = "foo"\nmemory = 1024\n')
    assert xm("create", str(config), "--host", "hv1").returncode == 0
    Host.objects.filter(name="hv1").update(uri="test+unix:///default?socket=/nonexistent/libvirt-sock")
    poll_hosts(list(Host.objects.filter(name="hv1")))
    listing = xm("list")
    foo = next(line.split() for line in listing.stdout.splitlines() if line.startswith("foo "))
    assert foo[6:] == ["1024", "hv1", "(last", "seen)"]
    assert listing.stderr.startswith("xm: hv1 is offline (host unreachable") and "last answered" in listing.stderr


def test_a_config_without_maxmem_cannot_grow_until_maxmem_is_raised(sim_hosts, tmp_path):
    config = tmp_path / "bar.cfg"
    config.write_text('name = "bar"\nmemory = 1024\n')
    assert xm("create", str(config), "--host", "hv1").returncode == 0
    refused = xm("mem-set", "bar", "1100")
    assert refused.returncode == 1 and "above the maxmem of bar (1,024 MiB)" in refused.stderr

    raised = xm("mem-max", "bar", "2048")
    assert raised.returncode == 0, raised.stderr
    assert "next boot" in raised.stdout
    bar = Domain.objects.get(name="bar")
    assert (bar.maxmem_kib, bar.config_maxmem_kib) == (1024 * 1024, 2048 * 1024)
    still = xm("mem-set", "bar", "1100")  # the running domain keeps its maximum until it reboots, and is told so
    assert (still.returncode, still.stderr.strip()) == (1, "xm: 1,100 MiB is above the maxmem of bar (1,024 MiB) until it "
                                                        "boots again: its config has 2,048 MiB, which a restart gives it (xm reboot bar)")


def test_errors_are_one_line_and_exit_1(sim_hosts, foo):
    cases = {
        ("mem-set", "nosuch", "512"): "xm: no domain named nosuch",
        ("mem-set", "foo", "lots"): "xm: 'lots' is not a memory size; use a whole number of MiB (512), or with a unit: 512M, 4G, 524288K",
        ("mem-set", "foo", "64"): "xm: 64 MiB is below the floor of foo (128 MiB); allowed: 128 MiB to 4,096 MiB",
        ("migrate", "foo", "hv9"): "xm: no host named hv9",
        ("migrate", "foo", "hv1"): "xm: foo already runs on hv1; pick another host",
        ("--user", "nobody", "list"): "xm: no active user named nobody",
        ("mem-set", "foo", "512", "--user", "nobody"): "xm: no active user named nobody",  # after the command too
        ("list", "foo", "nosuch", "other"): "xm: no domain named nosuch, other",  # as xm: scripts test for a domain so
        ("list", "--host", "hv9"): "xm: no host named hv9",
        ("create", "/bin/ls", "--host", "hv1"): 'xm: /bin/ls is not a text file: give a Xen config file (name = "foo", memory = 512, ...)',
    }
    for args, message in cases.items():
        result = xm(*args)
        assert (result.returncode, result.stderr.strip()) == (1, message), args
    for timeout in ("nan", "inf", "0", "soon"):  # nan and inf waited for ever
        result = xm("mem-set", "foo", "512", "--timeout", timeout)
        assert result.returncode == 2 and f"argument --timeout: '{timeout}' is not a number of seconds above 0" in result.stderr


def test_a_name_on_two_hosts_needs_the_host(sim_hosts, foo):
    from tests.conftest import define_domain

    define_domain(sim_hosts["hv2"], "foo", 1024, 2048)
    result = xm("mem-set", "foo", "512")
    assert result.returncode == 1
    assert "foo is on several hosts (hv1, hv2); say which with --host" in result.stderr
    assert xm("mem-set", "foo", "512", "--host", "hv2").returncode == 0
    assert Domain.objects.get(name="foo", host__name="hv2").memory_kib == 512 * 1024


def test_no_wait_prints_the_job_id(sim_hosts, foo):
    result = xm("mem-set", "foo", "768", "--no-wait")
    assert result.returncode == 0
    job = Job.objects.get(pk=int(result.stdout))
    assert (job.kind, job.params, job.actor_kind) == ("resize", {"target_kib": 768 * 1024}, "cli")


def test_a_job_left_behind_is_followed_with_xm_job(sim_hosts, foo):
    """--no-wait, Ctrl-C or a timeout leave a job running: `xm job ID` says how it stands, --wait how it ends."""
    job_id = xm("mem-set", "foo", "768", "--no-wait").stdout.strip()
    waited = xm("job", job_id, "--wait")
    assert waited.returncode == 0 and waited.stdout.strip().endswith(f"(job {job_id})"), waited.stderr
    shown = xm("job", job_id)
    assert shown.returncode == 0 and shown.stdout.startswith(f"job {job_id}: resize foo on hv1: succeeded\n")
    assert (xm("job", "999999").returncode, xm("job", "999999").stderr.strip()) == (1, "xm: no job 999999")


def test_a_domain_is_also_named_by_the_id_xm_list_shows(sim_hosts, foo):
    hv_id = Domain.objects.get(name="foo").hv_id
    result = xm("mem-set", str(hv_id), "768", "--no-wait")
    assert result.returncode == 0, result.stderr
    assert Job.objects.get(pk=int(result.stdout)).domain.name == "foo"
    # "²" is a digit to str.isdigit(), not to int(): it was a traceback.
    assert (xm("mem-set", "²", "768").returncode, xm("mem-set", "²", "768").stderr.strip()) == (1, "xm: no domain named ²")


def test_a_stopped_domain_is_refused_clearly(sim_hosts, foo):
    from hosts.drivers import driver_for

    driver_for(sim_hosts["hv1"].uri).destroy(str(foo.uuid))
    from domains.poller import poll_hosts

    poll_hosts([sim_hosts["hv1"]])
    result = xm("mem-set", "foo", "512")
    assert result.returncode == 1
    assert result.stderr.strip() == "xm: foo is shut off: a live resize needs a running domain; start it first"


def manage(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=child_environment(), capture_output=True, text=True, timeout=timeout
    )


def test_a_migration_left_to_run_is_stopped_from_the_command_line(sim_hosts, foo):
    fleet.simhost("hv1").describe(memory_mib=8192, cpus=16, migration_mib_s=64)  # foo's 1 GiB takes 16 s
    waiting = subprocess.Popen(
        [sys.executable, "manage.py", "xm", "migrate", "foo", "hv2"], cwd=ROOT, env=child_environment(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A suite started in the background inherits SIGINT ignored, and so would xm: give it Ctrl-C back.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 30
    while (job := Job.objects.filter(kind=Job.Kind.MIGRATE).first()) is None or job.progress == 0:
        assert time.monotonic() < deadline, f"the migration never got under way: {job}"
        time.sleep(0.1)
    # Ctrl-C stops the waiting, not the job, and says so.
    waiting.send_signal(signal.SIGINT)
    _, stderr = waiting.communicate(timeout=30)
    assert (waiting.returncode, stderr.strip()) == (
        1, f"xm: no longer waiting; job {job.pk} goes on (xm job {job.pk} says how it ends; manage.py jobs cancel {job.pk} "
        "cancels it, or stops a migration)"
    )
    job.refresh_from_db()
    assert job.state == Job.State.RUNNING

    stopped = manage("jobs", "cancel", str(job.pk))
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == f"job {job.pk} asked to stop: the migration is aborted at the worker's next check"
    job = wait_for_job(job)
    assert job.state == Job.State.CANCELLED and job.error.startswith("cancelled by cli:command line, stopped on request at ")
    assert virsh_dominfo(sim_hosts["hv1"].uri, "foo")["State"] == "running"
    assert Domain.objects.get(pk=foo.pk).host.name == "hv1"

    again = manage("jobs", "cancel", str(job.pk))
    assert (again.returncode, again.stderr.strip()) == (
        1, f"jobs: job {job.pk} (migrate) is cancelled: only a queued job or a running migration can be cancelled"
    )
    assert manage("jobs", "cancel", "999999").stderr.strip() == "jobs: no job 999999"
    assert manage("jobs", "cancel", str(job.pk), "--user", "nobody").stderr.strip() == "jobs: no active user named nobody"


def test_a_domain_whose_maxmem_was_lowered_for_its_next_boot_moves_as_it_runs(sim_hosts, foo):
    """Booted on the destination from its persistent config (maxmem 512 MiB), foo could not be given its 1024 MiB:
    the move failed and left a running copy on hv2 that nobody knew of."""
    hv1, hv2 = sim_hosts["hv1"], sim_hosts["hv2"]
    assert xm("mem-max", "foo", "512").returncode == 0
    moved = xm("migrate", "foo", "hv2")
    assert moved.returncode == 0, moved.stderr
    assert "foo" in virsh(hv2.uri, "list", "--name") and "foo" not in virsh(hv1.uri, "list", "--all", "--name")
    info = virsh_dominfo(hv2.uri, "foo")
    assert (info["Used memory"], info["Max memory"]) == ("1048576 KiB", "4194304 KiB")  # as it ran on hv1
    assert "<memory unit='KiB'>524288</memory>" in virsh(hv2.uri, "dumpxml", "--inactive", "foo")  # its next boot's
