"""Range-bounded delegation: the operator's per-domain limit and the team's quota, one by one and under
concurrent requests (threads with their own database connections, a real worker, real libvirt)."""

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connections

from balloonweb.access.actors import Actor
from balloonweb.access.models import Membership, Team
from balloonweb.audit.models import AuditEntry
from domains import services
from domains.models import Domain, Job
from hosts.drivers import driver_for
from tests.conftest import define_domain, wait_for_job

from .conftest import MiB, World, make_domain


def actor(world: World, role: str) -> Actor:
    return Actor.for_user(world.users[role])


def limit(team: Team, operator_max_mib=None, quota_mib=None) -> None:
    Team.objects.filter(pk=team.pk).update(
        operator_max_kib=operator_max_mib * MiB if operator_max_mib else None, quota_kib=quota_mib * MiB if quota_mib else None
    )


def test_an_operator_is_stopped_at_the_team_limit_with_the_limit_named(world: World):
    limit(world.team_a, operator_max_mib=2048)
    with pytest.raises(services.Forbidden) as refused:
        services.request_resize(actor(world, "operator"), world.da, "3G")
    assert refused.value.code == "team_limit"
    assert "3,072 MiB is above the team A's limit of 2,048 MiB for one domain" in refused.value.message
    # Refused attempts are audited, with the message.
    entry = AuditEntry.objects.filter(action="domain.resize", result="refused").get()
    assert entry.actor_label == "operator" and "2,048 MiB" in entry.message and entry.team_id == world.team_a.pk
    # Up to the limit is fine; an admin gives more.
    assert services.request_resize(actor(world, "operator"), world.da, "2G").params["target_kib"] == 2048 * MiB
    assert services.request_resize(actor(world, "admin"), world.da, "3G").params["target_kib"] == 3072 * MiB


def test_an_operator_may_shrink_a_domain_that_is_above_the_limit(world: World):
    Domain.objects.filter(pk=world.da.pk).update(memory_kib=3072 * MiB)
    limit(world.team_a, operator_max_mib=2048)
    assert services.request_resize(actor(world, "operator"), world.da, "2560").params["target_kib"] == 2560 * MiB


def test_an_admins_larger_resize_still_queued_does_not_lift_the_operators_limit(world: World):
    """The operator's 3 GiB would supersede the admin's queued 4 GiB and grow da (1 GiB) above their limit."""
    limit(world.team_a, operator_max_mib=2048)
    services.request_resize(actor(world, "admin"), world.da, "4G")
    with pytest.raises(services.Forbidden, match="3,072 MiB is above the team A's limit of 2,048 MiB"):
        services.request_resize(actor(world, "operator"), world.da, "3G")
    assert services.request_resize(actor(world, "operator"), world.da, "2G").params["target_kib"] == 2048 * MiB


def test_the_quota_binds_operators_and_admins_but_not_superusers(world: World):
    make_domain(world.a2, "db", memory_mib=2048)  # team A runs 1,024 + 2,048 MiB
    limit(world.team_a, quota_mib=4096)
    assert services.request_resize(actor(world, "operator"), world.da, "2G")  # 3072 + 1024 = 4096: just fits
    for role in ("operator", "admin"):
        with pytest.raises(services.Forbidden) as refused:
            services.request_resize(actor(world, role), world.da, "2049")
        assert refused.value.code == "team_quota"
        assert "the team A's quota of 4,096 MiB running memory would be exceeded: 4,096 MiB in use, 1 MiB more asked, 0 MiB left" in refused.value.message
    assert services.request_resize(Actor.for_user(world.users["superuser"]), world.da, "3G")


def test_a_team_admin_cannot_raise_their_own_quota(world: World):
    client = world.client("admin")
    response = client.post(f"/teams/{world.team_a.pk}/", {"operator_max_kib": "3G", "quota_kib": "100G"})
    assert response.status_code == 302
    world.team_a.refresh_from_db()
    assert world.team_a.operator_max_kib == 3072 * MiB and world.team_a.quota_kib is None
    entry = AuditEntry.objects.filter(action="team.update").get()
    assert entry.actor_label == "admin" and entry.after == {"operator_max_kib": 3072 * MiB} and entry.request_id


# -- concurrency ------------------------------------------------------------------------------------------------


def resize_at_once(requests: list[tuple[Actor, Domain, str]]) -> list[object]:
    """Issue the requests from one thread each, released together; each answer is a Job or the refusal."""
    results: list[object] = [None] * len(requests)
    start = threading.Barrier(len(requests))

    def run(index: int, who: Actor, domain: Domain, size: str) -> None:
        try:
            start.wait()
            results[index] = services.request_resize(who, domain, size)
        except Exception as exc:  # noqa: BLE001 - the refusal is the answer
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, *request)) for i, request in enumerate(requests)]
    [t.start() for t in threads]
    [t.join(timeout=120) for t in threads]
    return results


@pytest.mark.timeout(240)
def test_concurrent_grows_on_two_hosts_never_pass_the_team_quota(sim_hosts, celery_worker):
    """8 operators' requests at once, on two hosts of one team, each +256 MiB with 1,024 MiB left in the quota:
    exactly 4 are accepted, whatever the order (the team row lock serialises them across hosts), and the
    hypervisors end within the quota."""
    team = Team.objects.create(name="T", quota_kib=3072 * MiB)
    hosts = list(sim_hosts.values())
    for host in hosts:
        host.team = team
        host.save()
    operator = get_user_model().objects.create_user("op")
    Membership.objects.create(user=operator, team=team, role=Membership.Role.OPERATOR)
    domains = [define_domain(hosts[i % 2], f"d{i}", 256, 2048) for i in range(8)]  # 2,048 MiB running
    who = Actor.for_user(operator)

    results = resize_at_once([(Actor.for_user(operator), domain, "512") for domain in domains])

    accepted = [r for r in results if isinstance(r, Job)]
    refused = [r for r in results if isinstance(r, services.Forbidden)]
    assert len(accepted) == 4 and len(refused) == 4, results
    assert all(r.code == "team_quota" and "quota of 3,072 MiB" in r.message for r in refused)
    for job in accepted:
        assert wait_for_job(job).state == Job.State.SUCCEEDED, job.error
    running = sum(d.memory_kib for d in Domain.objects.filter(host__team=team).running())
    on_hypervisors = sum(d.memory_kib for h in hosts for d in driver_for(h.uri).list_domains() if d.state == "running")
    assert running == on_hypervisors == 3072 * MiB
    # Each request left one entry: accepted with its job, or refused naming the quota.
    entries = AuditEntry.objects.filter(action="domain.resize", actor_label="op")
    assert entries.filter(result="accepted").count() == 4 and entries.filter(result="refused").count() == 4
    # The team is now full: one more grow is refused, a shrink is not.
    with pytest.raises(services.Forbidden):
        services.request_resize(who, domains[0], "1G")
    wait_for_job(services.request_resize(who, accepted[0].domain, "256"))


@pytest.mark.skipif(connections["default"].vendor != "postgresql", reason="SQLite serialises every writing transaction anyway")
def test_a_quota_check_waits_for_the_team_row_lock(live_world: World):
    """Requests on different hosts of one team do not share a host lock: the quota check must take the team's
    row lock, or two of them could both see the same room. Here another transaction holds that lock; the
    request waits for it (and gives up at the lock timeout) rather than reading past it."""
    from django.db import OperationalError, transaction

    limit(live_world.team_a, quota_mib=8192)
    holding, release = threading.Event(), threading.Event()

    def hold_team_lock():
        with transaction.atomic():
            Team.objects.select_for_update().get(pk=live_world.team_a.pk)
            holding.set()
            release.wait(10)
        connections.close_all()

    holder = threading.Thread(target=hold_team_lock)
    holder.start()
    try:
        assert holding.wait(10)
        with pytest.raises(OperationalError, match="lock timeout"):
            with transaction.atomic():
                with connections["default"].cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '300ms'")
                services.request_resize(actor(live_world, "operator"), live_world.da, "2G")
    finally:
        release.set()
        holder.join()


def test_the_autoscaler_operates_its_teams_within_their_limits(world: World):
    limit(world.team_a, operator_max_mib=2048)
    scaler = Actor.autoscaler("v3", [world.team_a.pk])
    job = services.request_resize(scaler, world.da, "2G")
    assert AuditEntry.objects.get(job_id=job.pk).actor_label == "autoscaler policy v3"
    with pytest.raises(services.Forbidden):
        services.request_resize(scaler, world.da, "3G")  # the operator limit binds it too
    with pytest.raises(services.Forbidden):
        services.request_set_maxmem(scaler, world.da, "8G")  # not an admin
    with pytest.raises(services.NotFound):
        services.request_resize(Actor.autoscaler("v3", [world.team_b.pk]), world.da, "512")
