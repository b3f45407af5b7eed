"""Power jobs on a real QEMU guest. The lab's guests have no ACPI (nothing in them would handle a power button):
a shutdown request is accepted by libvirt and ignored by the guest, which is what a person must be told; a
forced restart boots the guest again with its persistent config."""

import pytest

from domains import jobs, services
from domains.models import Domain, Job
from hosts.models import Host
from tests.conftest import virsh_dominfo
from tests.lab.conftest import FULL_KIB, guest_report

pytestmark = pytest.mark.lab


@pytest.fixture
def held(lab_hosts):
    """lab1's jobs go to a queue no worker serves: the test runs each one in this process, as a worker would, with
    this process's settings (a short SHUTDOWN_WAIT)."""
    Host.objects.filter(name="lab1").update(queue_group="held")
    return lab_hosts


def run(job: Job) -> Job:
    jobs.run_job(job.pk, worker="test")
    job.refresh_from_db()
    return job


def test_a_guest_that_ignores_the_shutdown_request_is_reported_and_keeps_running(labvm1, held, cli, settings):
    settings.SHUTDOWN_WAIT = 3
    job = run(services.request_power(cli, labvm1, "shutdown"))
    assert (job.state, job.error_code) == (Job.State.FAILED, "shutdown_timeout")
    assert job.error == ("labvm1 did not shut down within 3 s: its guest may ignore the request (no ACPI support); "
                         "it still runs. Force it off to stop it at once")
    assert "labvm1 asked to shut down" in job.log
    assert virsh_dominfo(labvm1.host.uri, "labvm1")["State"] == "running"
    assert Domain.objects.get(pk=labvm1.pk).state == "running"
    before = guest_report(labvm1)
    guest_report(labvm1, lambda r: r.uptime_s > before.uptime_s)  # still alive, still counting


def test_a_forced_restart_boots_the_guest_again_with_its_config(labvm1, held, cli):
    before = guest_report(labvm1)
    job = run(services.request_power(cli, labvm1, "restart", force=True))
    assert job.state == Job.State.SUCCEEDED, job.error
    assert "labvm1 turned off at once (forced)" in job.log and "labvm1 started on lab1 with its persistent config" in job.log
    # A new boot: the guest's uptime starts again, at its full configured memory.
    report = guest_report(labvm1, lambda r: r.uptime_s < before.uptime_s, timeout_s=60)
    assert report.memtotal_kib > 0
    domain = Domain.objects.get(pk=labvm1.pk)
    assert (domain.state, domain.memory_kib, domain.booted_at is not None) == ("running", FULL_KIB, True)
