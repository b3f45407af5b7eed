"""Host groups with workers of their own: two worker processes, each taking only its own group's jobs, sharing
one Redis and one database."""

from domains import services
from domains.models import Job
from hosts.models import Host
from tests.conftest import define_domain, virsh_dominfo, wait_for_job


def test_each_group_of_hosts_is_served_by_its_own_worker(sim_hosts, cli, start_worker):
    Host.objects.filter(name="hv1").update(queue_group="east")
    Host.objects.filter(name="hv2").update(queue_group="west")
    start_worker("east", "jobs.east,poll.east")
    start_worker("west", "jobs.west,poll.west")
    on_east = [define_domain(sim_hosts["hv1"], f"e{i}", 512, 1024) for i in range(3)]
    on_west = [define_domain(sim_hosts["hv2"], f"w{i}", 512, 1024) for i in range(3)]

    jobs = [services.request_resize(cli, d, "768") for d in on_east + on_west]
    for job in jobs:
        assert wait_for_job(job).state == Job.State.SUCCEEDED

    workers = {job.domain.host.name: set() for job in jobs}
    for job in Job.objects.filter(pk__in=[j.pk for j in jobs]).select_related("domain__host"):
        workers[job.domain.host.name].add(job.worker.split("@")[0])
    assert workers == {"hv1": {"east"}, "hv2": {"west"}}
    assert {j.queue for j in Job.objects.filter(pk__in=[j.pk for j in jobs])} == {"jobs.east", "jobs.west"}
    assert virsh_dominfo(sim_hosts["hv2"].uri, "w2")["Used memory"] == f"{768 * 1024} KiB"


def test_each_group_sweeps_its_own_jobs_near_its_hosts(sim_hosts, cli, start_worker):
    """A central sweep asked every group's hypervisors itself, which the workers near them reach and it may not."""
    from datetime import timedelta

    from django.utils import timezone

    from domains import jobs, tasks

    Host.objects.filter(name="hv1").update(queue_group="east")
    start_worker("east", "jobs.east,poll.east")
    foo = define_domain(sim_hosts["hv1"], "foo", 1024, 2048)
    lost = Job.objects.create(kind=Job.Kind.RESIZE, domain=foo, host=sim_hosts["hv1"], state=Job.State.RUNNING,
                              params={"target_kib": 768 * 1024}, actor_kind="cli", actor_label="command line", attempts=1,
                              queue="jobs.east", started=timezone.now() - timedelta(minutes=30),
                              heartbeat=timezone.now() - timedelta(minutes=30))
    assert tasks.sweep_jobs() == sorted(set(Host.objects.values_list("queue_group", flat=True)))
    done = wait_for_job(lost)
    assert done.state == Job.State.SUCCEEDED and "stopped answering; queued again" in done.log
    assert done.worker.startswith("east@")
    assert jobs.sweep("west")["requeued"] == 0  # another group's sweep leaves it alone
    assert virsh_dominfo(sim_hosts["hv1"].uri, "foo")["Used memory"] == f"{768 * 1024} KiB"
