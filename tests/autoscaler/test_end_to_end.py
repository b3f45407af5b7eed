"""The autoscaler end to end on simulated hosts, through a real Celery worker and real libvirt: a guest's
demand rises and its memory grows in the next cycles; its host runs short, ballooning makes room, and when
that is not enough one domain migrates. Every step is an ordinary job, audited with the autoscaler as actor.

A cycle here is what the poller and the autoscaler do every interval, done by the test in order: poll, run the
autoscaler, wait for its jobs (and for the steps that waited for shrinks) to end.
"""

import pytest

from balloonweb.access.models import Team
from balloonweb.audit.models import AuditEntry
from domains.autoscaler.models import Decision, TeamPolicy
from domains.models import Domain, Job
from hosts.models import Host
from tests.conftest import autoscaler_cycle as cycle, define_domain

pytestmark = pytest.mark.django_db(transaction=True)
MiB = 1024


def memory_mib(name: str) -> int:
    return Domain.objects.get(name=name).memory_kib // MiB


def test_demand_rises_ballooning_makes_room_then_a_migration(sim_hosts, celery_worker):
    hv1, hv2 = sim_hosts["hv1"], sim_hosts["hv2"]  # 8 GiB each, 512 MiB reserve: 7.5 GiB usable
    team = Team.objects.create(name="ops")
    Host.objects.filter(pk__in=[hv1.pk, hv2.pk]).update(team=team)
    TeamPolicy.objects.create(team=team, mode="automatic")
    # hv1 is full: a guest that needs much more than it has, an idle guest holding 3 GiB, two steady ones.
    define_domain(hv1, "grower", 1024, 4096, description="demand: steady 3400M")
    define_domain(hv1, "idler", 3072, 4096, description="demand: idle 1024M")
    define_domain(hv1, "steady1", 2048, 4096, description="demand: steady 1800M")
    define_domain(hv1, "steady2", 1536, 4096, description="demand: steady 1300M")
    Domain.objects.update(floor_kib=512 * MiB)

    # Cycle 1: the grower is out of memory and grows at once, into the room the idle guest gives back.
    first = cycle()
    assert memory_mib("idler") == 512
    assert memory_mib("grower") > 3400 * 100 // 97  # enough for what it uses: no longer out of memory
    grow = Decision.objects.get(domain__name="grower", kind=Decision.Kind.STEP, step_kind="resize")
    assert grow.state == Decision.State.APPLIED and grow.job.state == Job.State.SUCCEEDED
    assert first.applied + first.waiting >= 2

    # Cycle 2: with what the grower really uses now known, even working sets and margins do not fit hv1:
    # one domain moves to hv2 (the fewest bytes that cover the shortfall).
    cycle()
    moves = Decision.objects.filter(kind=Decision.Kind.STEP, step_kind="migrate")
    assert moves.count() == 1
    move = moves.get()
    assert move.state == Decision.State.APPLIED and move.job.state == Job.State.SUCCEEDED
    assert move.host_id == hv1.pk and move.to_host_id == hv2.pk
    assert Domain.objects.get(pk=move.domain_id).host_id == hv2.pk
    assert "fewest bytes" in move.reason

    # Every step was an ordinary job, created by the autoscaler and audited with its policy version.
    applied = Decision.objects.filter(kind=Decision.Kind.STEP, state=Decision.State.APPLIED)
    jobs = Job.objects.all()
    assert sorted(d.job_id for d in applied) == sorted(j.pk for j in jobs)
    assert {j.actor_kind for j in jobs} == {"autoscaler"} and all(j.state == Job.State.SUCCEEDED for j in jobs)
    entries = AuditEntry.objects.filter(job_id__in=[j.pk for j in jobs])
    accepted = entries.filter(result=AuditEntry.Result.ACCEPTED)
    assert sorted(accepted.values_list("job_id", flat=True)) == sorted(j.pk for j in jobs)
    assert all(e.actor_kind == "autoscaler" and "autoscaler policy" in e.actor_label for e in entries)
    # hv1 never held more than it may: what its domains have now fits it.
    on_hv1 = sum(Domain.objects.filter(host=hv1, state="running").values_list("memory_kib", flat=True))
    assert on_hv1 <= Host.objects.get(pk=hv1.pk).usable_kib
