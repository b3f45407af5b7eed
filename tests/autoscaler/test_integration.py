"""The autoscaler on the database: snapshot queries, automatic and recommend modes, decisions kept, approvals,
policies. Jobs are created but not run here (test_end_to_end.py runs them on simulated hosts)."""

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from balloonweb.access.actors import Actor
from balloonweb.access.models import Membership, Team
from balloonweb.audit.models import AuditEntry
from domains import services
from domains.autoscaler import run, show
from domains.autoscaler.models import Decision, DomainState, EngineState, HostPolicy, HostState, TeamPolicy
from domains.autoscaler.state import build_snapshot
from domains.models import Domain, Job
from hosts.models import Host

pytestmark = pytest.mark.django_db

MiB = 1024
GiB = 1024 * MiB


def make_host(name: str, team: Team | None, usable_gib: int = 16) -> Host:
    return Host.objects.create(
        name=name, uri=f"test:///{name}", team=team, status=Host.Status.ONLINE, total_kib=usable_gib * GiB + 512 * MiB,
        reserved_kib=512 * MiB,
    )


def make_domain(host: Host, name: str, *, memory: int, used: int, maxmem: int = 8 * GiB, floor: int = 512 * MiB) -> Domain:
    """A running domain whose guest reports like the simulated fleet's (97 % of it available)."""
    available = memory * 97 // 100
    return Domain.objects.create(
        host=host, name=name, uuid=uuid.uuid4(), state=Domain.State.RUNNING, memory_kib=memory, maxmem_kib=maxmem,
        config_memory_kib=memory, config_maxmem_kib=maxmem, floor_kib=floor, actual_kib=memory,
        available_kib=available, unused_kib=max(0, available - used), usable_kib=max(0, available - used),
    )


@pytest.fixture
def team() -> Team:
    return Team.objects.create(name="blue")


@pytest.fixture
def admin(team):
    user = get_user_model().objects.create_user("ada")
    Membership.objects.create(user=user, team=team, role=Membership.Role.ADMIN)
    return Actor.for_user(user)


@pytest.fixture
def now() -> float:
    return EngineState.get().last_run_at + 1000.0


def test_the_snapshot_takes_the_same_number_of_queries_for_any_fleet(team, now):
    host = make_host("hv1", team)
    make_domain(host, "a", memory=2 * GiB, used=1 * GiB)
    with CaptureQueriesContext(connection) as small:
        build_snapshot(now)
    for h in range(2, 6):
        other = make_host(f"hv{h}", team)
        HostPolicy.objects.create(host=other, mode="automatic")
        for d in range(10):
            domain = make_domain(other, f"d{h}-{d}", memory=2 * GiB, used=1 * GiB)
            DomainState.objects.create(domain=domain, requested_kib=2 * GiB)
    with CaptureQueriesContext(connection) as large:
        context = build_snapshot(now)
    assert len(large.captured_queries) == len(small.captured_queries) <= 7
    assert len(context.snapshot.domains) == 41
    assert context.modes[other.pk] == "automatic" and context.modes[host.pk] == "off"


def test_modes_come_from_the_host_else_its_team(team, now):
    host = make_host("hv1", team)
    loner = make_host("hv2", None)
    TeamPolicy.objects.create(team=team, mode="recommend")
    assert build_snapshot(now).modes == {host.pk: "recommend", loner.pk: "off"}
    HostPolicy.objects.create(host=host, mode="automatic")
    assert build_snapshot(now).modes[host.pk] == "automatic"


def test_automatic_mode_applies_steps_as_jobs_audited_with_the_autoscaler_and_its_policy_version(team, now):
    host = make_host("hv1", team)
    HostPolicy.objects.create(host=host, mode="automatic")
    idle = make_domain(host, "idle", memory=6 * GiB, used=300 * MiB)
    report = run.run_autoscaler(now)
    assert report.ran and report.applied == 1
    job = Job.objects.get(domain=idle)
    assert job.kind == Job.Kind.RESIZE and job.params["target_kib"] < 6 * GiB
    assert job.actor_kind == "autoscaler" and job.actor_label == f"autoscaler policy {EngineState.get().policy_version}"
    entry = AuditEntry.objects.get(action="domain.resize", domain_id=idle.pk)
    assert entry.actor_kind == "autoscaler" and "policy" in entry.actor_label
    step = Decision.objects.get(domain=idle, kind=Decision.Kind.STEP)
    assert step.state == Decision.State.APPLIED and step.job == job and "shrink" in step.reason


def test_a_run_right_after_another_does_nothing(team, now):
    make_host("hv1", team)
    assert run.run_autoscaler(now).ran
    assert not run.run_autoscaler(now + 0.1).ran


def test_recommend_mode_keeps_steps_for_a_person_and_creates_no_job(team, now):
    TeamPolicy.objects.create(team=team, mode="recommend")
    host = make_host("hv1", team)
    idle = make_domain(host, "idle", memory=6 * GiB, used=300 * MiB)
    report = run.run_autoscaler(now)
    assert report.recommended == 1 and not Job.objects.exists()
    recommended = Decision.objects.get(domain=idle, state=Decision.State.RECOMMENDED)
    # The same plan next cycle: the same recommendation stays, no second one.
    run.run_autoscaler(now + 10)
    assert Decision.objects.filter(domain=idle, state=Decision.State.RECOMMENDED).get() == recommended


def test_a_recommendation_stays_while_demand_creeps_within_the_deadband(team, now):
    """The demo's guests creep a MiB per poll: the step on the page must stay approvable, not be replaced."""
    TeamPolicy.objects.create(team=team, mode="recommend")
    host = make_host("hv1", team)
    idle = make_domain(host, "idle", memory=6 * GiB, used=300 * MiB)
    run.run_autoscaler(now)
    recommended = Decision.objects.get(domain=idle, state=Decision.State.RECOMMENDED)
    Domain.objects.filter(pk=idle.pk).update(unused_kib=idle.unused_kib - 8 * MiB, usable_kib=idle.usable_kib - 8 * MiB)
    run.run_autoscaler(now + 10)
    assert Decision.objects.filter(domain=idle, state=Decision.State.RECOMMENDED).get() == recommended
    # Demand that moves the target well past the deadband replaces it.
    Domain.objects.filter(pk=idle.pk).update(unused_kib=idle.unused_kib - 2 * GiB, usable_kib=idle.usable_kib - 2 * GiB)
    run.run_autoscaler(now + 20)
    replaced = Decision.objects.get(domain=idle, state=Decision.State.RECOMMENDED)
    assert replaced != recommended and replaced.to_kib > recommended.to_kib + 1 * GiB


def test_a_person_approves_or_dismisses_a_recommendation(team, admin, now):
    TeamPolicy.objects.create(team=team, mode="recommend")
    host = make_host("hv1", team)
    make_domain(host, "idle", memory=6 * GiB, used=300 * MiB)
    make_domain(host, "idle2", memory=6 * GiB, used=300 * MiB)
    run.run_autoscaler(now)
    first, second = Decision.objects.filter(state=Decision.State.RECOMMENDED).order_by("pk")
    approved = run.approve(admin, first)
    assert approved.state == Decision.State.APPLIED and approved.job.actor_label == "ada"
    assert approved.decided_by.username == "ada"
    dismissed = run.dismiss(admin, second)
    assert dismissed.state == Decision.State.DISMISSED
    assert AuditEntry.objects.filter(action="autoscaler.dismiss").count() == 1
    with pytest.raises(services.Conflict):
        run.approve(admin, dismissed)


def test_an_outsider_cannot_approve(team, now):
    TeamPolicy.objects.create(team=team, mode="recommend")
    host = make_host("hv1", team)
    make_domain(host, "idle", memory=6 * GiB, used=300 * MiB)
    run.run_autoscaler(now)
    outsider = Actor.for_user(get_user_model().objects.create_user("eve"))
    recommended = Decision.objects.get(state=Decision.State.RECOMMENDED)
    with pytest.raises(services.NotFound):
        run.approve(outsider, recommended)
    recommended.refresh_from_db()
    assert recommended.state == Decision.State.RECOMMENDED and not Job.objects.exists()


def test_do_nothing_decisions_are_kept_when_they_change(team, now):
    host = make_host("hv1", team)
    HostPolicy.objects.create(host=host, mode="automatic")
    calm = make_domain(host, "calm", memory=2 * GiB, used=1550 * MiB)  # within its deadband
    run.run_autoscaler(now)
    run.run_autoscaler(now + 10)
    notes = Decision.objects.filter(domain=calm, kind=Decision.Kind.NOTE)
    assert [n.code for n in notes] == ["within_deadband"]
    assert "deadband" in notes[0].reason
    Domain.objects.filter(pk=calm.pk).update(floor_kib=2 * GiB)  # now it is held at its floor
    run.run_autoscaler(now + 20)
    assert [n.code for n in notes.order_by("pk")] == ["within_deadband", "at_floor"]


def test_a_host_that_is_off_is_said_once(team, now):
    host = make_host("hv1", team)
    make_domain(host, "idle", memory=6 * GiB, used=300 * MiB)
    run.run_autoscaler(now)
    run.run_autoscaler(now + 10)
    assert list(Decision.objects.filter(host=host).values_list("code", flat=True)) == ["host_off"]
    assert not Job.objects.exists()


def test_the_engine_remembers_watches_between_runs(team, now):
    host = make_host("hv1", team)
    HostPolicy.objects.create(host=host, mode="automatic")
    busy = make_domain(host, "busy", memory=3 * GiB, used=3 * GiB)  # out of memory: saturated
    run.run_autoscaler(now)
    state = DomainState.objects.get(domain=busy)
    assert state.saturated_since == now and state.last_grown_at == now


def test_the_engine_remembers_spikes_that_came_together_between_runs(team, now):
    host = make_host("hv1", team)
    HostPolicy.objects.create(host=host, mode="recommend")
    for name in ("a", "b"):  # both out of memory at once: two passing spikes
        make_domain(host, name, memory=3 * GiB, used=3 * GiB)
    make_domain(host, "calm", memory=2 * GiB, used=1550 * MiB)
    run.run_autoscaler(now)
    state = HostState.objects.get(host=host)
    # Each wants at least all it has at its 20 % free share; the planning held room for one such excursion.
    assert state.coincident_kib >= (3 * GiB / 0.8 - 3 * GiB) * 0.99 and state.coincident_at == now
    assert build_snapshot(now + 10).snapshot.hosts_by_id[host.pk].coincidence.kib == state.coincident_kib


def test_policy_changes_are_audited_and_change_the_policy_version(team, admin):
    host = make_host("hv1", team)
    domain = make_domain(host, "a", memory=2 * GiB, used=1 * GiB)
    before = EngineState.get().policy_version
    run.set_policy(admin, host, mode="automatic", target_use=0.9)
    run.set_policy(admin, domain, free_share=0.3, priority=5)
    run.set_policy(admin, team, mode="recommend")
    assert EngineState.get().policy_version != before
    assert HostPolicy.objects.get(host=host).target_use == 0.9
    entries = AuditEntry.objects.filter(action="autoscaler.policy").order_by("pk")
    assert [e.after for e in entries][:2] == [{"mode": "automatic", "target_use": 0.9}, {"free_share": 0.3, "priority": 5}]
    with pytest.raises(services.BadRequest):
        run.set_policy(admin, domain, free_share=1.5)
    with pytest.raises(services.BadRequest):
        run.set_policy(admin, host, mode="sometimes")


def test_an_operator_may_not_change_policies(team):
    user = get_user_model().objects.create_user("otto")
    Membership.objects.create(user=user, team=team, role=Membership.Role.OPERATOR)
    host = make_host("hv1", team)
    with pytest.raises(services.Forbidden):
        run.set_policy(Actor.for_user(user), host, mode="automatic")


def test_what_if_sees_only_the_actors_hosts(team, admin):
    mine = make_host("hv1", team, usable_gib=8)
    TeamPolicy.objects.create(team=team, mode="recommend")
    theirs = make_host("hv2", Team.objects.create(name="red"), usable_gib=64)
    HostPolicy.objects.create(host=theirs, mode="automatic")
    make_domain(mine, "a", memory=4 * GiB, used=3 * GiB)
    answer = run.what_if(admin, 2 * GiB, 4 * GiB)
    assert answer.host_id == mine.pk
    assert all(c.host_id == mine.pk for c in answer.candidates)


def test_a_domain_booted_since_its_resize_is_watched_against_what_it_has_not_the_old_target(team, now):
    """A guest restarted after a resize comes back at its config's memory: the balloon did not fail to reach the
    old target (it is no longer asked), and a stuck flag from before the boot is dropped."""
    from datetime import datetime, timedelta
    from datetime import timezone as tz

    host = make_host("hv1", team)
    resized = make_domain(host, "resized", memory=2 * GiB, used=1 * GiB)
    stuck = make_domain(host, "stuck", memory=2 * GiB, used=1 * GiB)
    asked_at = datetime.fromtimestamp(now - 120, tz=tz.utc)
    Job.objects.create(kind=Job.Kind.RESIZE, domain=resized, host=host, state=Job.State.SUCCEEDED,
                       params={"target_kib": GiB}, finished=asked_at, actor_kind="cli", actor_label="command line")
    DomainState.objects.create(domain=stuck, requested_kib=GiB, stuck_since=now - 300, retries=2, retry_at=now + 200)
    before = {d.id: d for d in build_snapshot(now).snapshot.domains}
    assert before[resized.pk].requested_kib == GiB and before[stuck.pk].requested_kib == GiB
    assert before[stuck.pk].watch.stuck_since == now - 300

    Domain.objects.filter(pk__in=[resized.pk, stuck.pk]).update(booted_at=asked_at + timedelta(seconds=60))
    after = {d.id: d for d in build_snapshot(now).snapshot.domains}
    assert after[resized.pk].requested_kib is None and after[stuck.pk].requested_kib is None
    assert after[stuck.pk].watch.stuck_since is None and after[stuck.pk].watch.retries == 0


def test_in_recommend_mode_a_stuck_balloons_retry_stays_for_a_person_until_the_next_try(team, now):
    """The retry is the way out of being stuck: it must not vanish at the next cycle, which only says 'stuck,
    next try in N s'."""
    TeamPolicy.objects.create(team=team, mode="recommend")
    host = make_host("hv1", team)
    stuck = make_domain(host, "stuck", memory=6 * GiB, used=300 * MiB)
    DomainState.objects.create(domain=stuck, requested_kib=GiB, stuck_since=now - 100, retry_at=now - 1)
    run.run_autoscaler(now)
    retry = Decision.objects.get(domain=stuck, state=Decision.State.RECOMMENDED)
    assert "retry #1" in retry.reason
    run.run_autoscaler(now + 10)
    retry.refresh_from_db()
    assert retry.state == Decision.State.RECOMMENDED
    assert Decision.objects.filter(domain=stuck, code="stuck").exists()


def test_a_step_left_waiting_by_a_lost_task_is_refused_rather_than_waiting_forever(team, now):
    from datetime import datetime, timedelta
    from datetime import timezone as tz

    host = make_host("hv1", team)
    domain = make_domain(host, "d", memory=2 * GiB, used=1 * GiB)
    at = datetime.fromtimestamp(now, tz=tz.utc)
    common = dict(kind=Decision.Kind.STEP, code="grow", host=host, domain=domain, step_kind="resize", from_kib=2 * GiB,
                  to_kib=3 * GiB, reason="r", mode="recommend", state=Decision.State.WAITING)
    lost = Decision.objects.create(at=at - timedelta(hours=1), decided_at=at - timedelta(minutes=6), **common)
    recent = Decision.objects.create(at=at - timedelta(hours=1), decided_at=at - timedelta(seconds=30), **common)
    run.run_autoscaler(now)
    lost.refresh_from_db()
    recent.refresh_from_db()
    assert lost.state == Decision.State.REFUSED and "still waiting for shrinks after 5 minutes" in lost.error
    assert recent.state == Decision.State.WAITING  # approved half a minute ago: its shrinks may still be running


def test_a_recommendation_for_a_domain_that_moved_goes_and_is_made_again_where_it_runs(team, now):
    TeamPolicy.objects.create(team=team, mode="recommend")
    hv1, hv2 = make_host("hv1", team), make_host("hv2", team)
    idle = make_domain(hv1, "idle", memory=6 * GiB, used=300 * MiB)
    run.run_autoscaler(now)
    old = Decision.objects.get(domain=idle, state=Decision.State.RECOMMENDED)
    Domain.objects.filter(pk=idle.pk).update(host=hv2)  # a person moved it meanwhile
    run.run_autoscaler(now + 10)
    old.refresh_from_db()
    assert old.state == Decision.State.SUPERSEDED
    assert Decision.objects.get(domain=idle, state=Decision.State.RECOMMENDED).host_id == hv2.pk


def test_recommendations_of_a_host_switched_out_of_recommend_mode_are_withdrawn(team, now):
    """Left on the page, a click days later would have applied old sizes."""
    TeamPolicy.objects.create(team=team, mode="recommend")
    host = make_host("hv1", team)
    make_domain(host, "idle", memory=6 * GiB, used=300 * MiB)
    run.run_autoscaler(now)
    old = Decision.objects.get(state=Decision.State.RECOMMENDED)
    HostPolicy.objects.create(host=host, mode="off")
    run.run_autoscaler(now + 10)
    old.refresh_from_db()
    assert old.state == Decision.State.SUPERSEDED and not Decision.objects.filter(state=Decision.State.RECOMMENDED).exists()


def test_a_dismissed_step_is_not_recommended_again_for_an_hour_unless_it_changes(team, admin, now):
    TeamPolicy.objects.create(team=team, mode="recommend")
    host = make_host("hv1", team)
    idle = make_domain(host, "idle", memory=6 * GiB, used=300 * MiB)
    run.run_autoscaler(now)
    run.dismiss(admin, Decision.objects.get(state=Decision.State.RECOMMENDED))
    run.run_autoscaler(now + 10)
    assert not Decision.objects.filter(state=Decision.State.RECOMMENDED).exists()
    # Demand that moves the step beyond the domain's deadband makes another step, which is shown.
    Domain.objects.filter(pk=idle.pk).update(unused_kib=idle.unused_kib - 2 * GiB, usable_kib=idle.usable_kib - 2 * GiB)
    run.run_autoscaler(now + 20)
    assert Decision.objects.filter(domain=idle, state=Decision.State.RECOMMENDED).count() == 1


def test_the_autoscaler_grows_a_domain_up_to_its_teams_operator_limit(team, now):
    """The autoscaler acts as an operator: a saturated guest of 8 GiB maxmem is offered the team's 4 GiB limit,
    not its maxmem (which the services refused at every poll, so it got nothing)."""
    Team.objects.filter(pk=team.pk).update(operator_max_kib=4 * GiB)
    host = make_host("hv1", team)
    HostPolicy.objects.create(host=host, mode="automatic")
    busy = make_domain(host, "busy", memory=3 * GiB, used=3 * GiB)
    run.run_autoscaler(now)
    step = Decision.objects.get(domain=busy, kind=Decision.Kind.STEP)
    assert (step.state, step.to_kib, Job.objects.get().params["target_kib"]) == (Decision.State.APPLIED, 4 * GiB, 4 * GiB)
    assert "offered 4,096 MiB (its team's operator limit for the autoscaler: 4,096 MiB) at once" in step.reason


def test_the_autoscaler_grows_a_domain_only_as_far_as_its_teams_quota_allows(team, now):
    """The quota binds the autoscaler as an operator: it asked for the whole grow, was refused at every poll
    (then held for 10 minutes), and the guest out of memory got nothing of the quota that was left."""
    Team.objects.filter(pk=team.pk).update(quota_kib=6 * GiB)
    host = make_host("hv1", team)
    HostPolicy.objects.create(host=host, mode="automatic")
    busy = make_domain(host, "busy", memory=3 * GiB, used=3 * GiB)
    steady = make_domain(make_host("hv2", team), "steady", memory=2 * GiB, used=1536 * MiB)  # wants 2 GiB: stays
    run.run_autoscaler(now)
    step = Decision.objects.get(domain=busy, kind=Decision.Kind.STEP)
    assert (step.state, step.to_kib, Job.objects.get().params["target_kib"]) == (Decision.State.APPLIED, 4 * GiB, 4 * GiB)
    assert step.reason.startswith("4,096 MiB rather than 8,192 MiB: its team's quota of running memory has 1,024 MiB left")
    assert not AuditEntry.objects.filter(result=AuditEntry.Result.REFUSED).exists()
    assert not Decision.objects.filter(domain=steady, kind=Decision.Kind.STEP).exists()


def test_a_domain_whose_team_has_used_its_quota_is_held_without_a_refusal(team, now):
    Team.objects.filter(pk=team.pk).update(quota_kib=3 * GiB)
    host = make_host("hv1", team)
    HostPolicy.objects.create(host=host, mode="automatic")
    busy = make_domain(host, "busy", memory=3 * GiB, used=3 * GiB)
    for cycle in range(3):
        run.run_autoscaler(now + 10 * cycle)
    assert not Job.objects.exists() and not AuditEntry.objects.filter(result=AuditEntry.Result.REFUSED).exists()
    held = Decision.objects.filter(domain=busy).latest("at")
    assert held.kind == Decision.Kind.NOTE and held.code == "held_by_quota"
    assert held.reason.startswith("stays at 3,072 MiB rather than growing to 8,192 MiB: its team's quota of running memory has 0 MiB left")
    assert "Without the quota: out of memory" in held.reason


def test_a_step_refused_as_it_is_sent_is_held_rather_than_asked_again_at_every_poll(team, now, monkeypatch):
    """The plan counts the quota as it was when the snapshot was read; memory that another request booked since
    makes the services refuse the step. It is not asked for again, and audited as refused, at every poll."""
    Team.objects.filter(pk=team.pk).update(quota_kib=4 * GiB)
    host = make_host("hv1", team)
    HostPolicy.objects.create(host=host, mode="automatic")
    busy = make_domain(host, "busy", memory=3 * GiB, used=3 * GiB)

    def snapshot_then_a_domain_starts(at):
        context = build_snapshot(at)
        make_domain(host, "started", memory=1 * GiB, used=512 * MiB)  # booked between the snapshot and the send
        return context

    monkeypatch.setattr(run, "build_snapshot", snapshot_then_a_domain_starts)
    run.run_autoscaler(now)
    monkeypatch.undo()
    refused = Decision.objects.get(domain=busy, kind=Decision.Kind.STEP)
    assert refused.state == Decision.State.REFUSED and refused.error_code == "team_quota"
    assert "the team blue's quota of 4,096 MiB running memory would be exceeded" in refused.error
    assert AuditEntry.objects.get(action="domain.resize", result=AuditEntry.Result.REFUSED).object_repr == "busy"
    Team.objects.filter(pk=team.pk).update(quota_kib=5 * GiB)  # room again, but the refusal holds
    run.run_autoscaler(now + 10)
    assert Decision.objects.filter(domain=busy, kind=Decision.Kind.STEP).count() == 1
    run.run_autoscaler(now + 10 + run.REFUSAL_HOLDS_FOR.total_seconds())  # tried again once the hold is over
    assert Decision.objects.filter(domain=busy, kind=Decision.Kind.STEP).count() == 2


def test_a_step_waiting_for_shrinks_is_not_planned_again(team, now):
    """After Approve all, a grow waiting for its shrinks came back as a new recommendation (approvable twice)."""
    TeamPolicy.objects.create(team=team, mode="recommend")
    host = make_host("hv1", team)
    busy = make_domain(host, "busy", memory=3 * GiB, used=3 * GiB)
    at = run.datetime.fromtimestamp(now, tz=run.tz.utc)
    Decision.objects.create(at=at, kind=Decision.Kind.STEP, code="saturated", host=host, domain=busy, step_kind="resize",
                            from_kib=3 * GiB, to_kib=8 * GiB, reason="r", mode="recommend", state=Decision.State.WAITING)
    run.run_autoscaler(now)
    assert not Decision.objects.filter(domain=busy, state=Decision.State.RECOMMENDED).exists()


def test_approve_all_sends_shrinks_before_an_older_grow(team, admin, now):
    """A grow recommended before the shrink that makes its room: the shrink goes first, the grow waits for it."""
    host = make_host("hv1", team, usable_gib=8)
    busy = make_domain(host, "busy", memory=3 * GiB, used=3 * GiB)
    idle = make_domain(host, "idle", memory=5 * GiB, used=300 * MiB)
    at = run.datetime.fromtimestamp(now, tz=run.tz.utc)
    common = dict(kind=Decision.Kind.STEP, host=host, step_kind="resize", reason="r", mode="recommend", state=Decision.State.RECOMMENDED)
    grow = Decision.objects.create(at=at, code="saturated", domain=busy, from_kib=3 * GiB, to_kib=6 * GiB, **common)
    shrink = Decision.objects.create(at=at + run.timedelta(minutes=5), code="shrink", domain=idle, from_kib=5 * GiB, to_kib=1 * GiB, **common)
    assert [s.pk for s in show.open_steps(host)] == [shrink.pk, grow.pk]
    run.approve_plan(admin, host)
    grow.refresh_from_db()
    shrink.refresh_from_db()
    assert (shrink.state, grow.state) == (Decision.State.APPLIED, Decision.State.WAITING)


def test_an_approved_grow_starts_the_shrink_cooldown(team, admin, now):
    TeamPolicy.objects.create(team=team, mode="recommend")
    host = make_host("hv1", team)
    busy = make_domain(host, "busy", memory=3 * GiB, used=3 * GiB)
    run.run_autoscaler(now)
    assert DomainState.objects.get(domain=busy).last_grown_at is None
    run.approve(admin, Decision.objects.get(domain=busy, state=Decision.State.RECOMMENDED))
    assert DomainState.objects.get(domain=busy).last_grown_at is not None


def test_a_waiting_step_is_not_sent_once_its_host_left_automatic_mode(team, now):
    host = make_host("hv1", team)
    HostPolicy.objects.create(host=host, mode="off")
    busy = make_domain(host, "busy", memory=3 * GiB, used=3 * GiB)
    at = run.datetime.fromtimestamp(now, tz=run.tz.utc)
    waiting = Decision.objects.create(at=at, kind=Decision.Kind.STEP, code="saturated", host=host, domain=busy, step_kind="resize",
                                      from_kib=3 * GiB, to_kib=4 * GiB, reason="r", mode="automatic", state=Decision.State.WAITING)
    assert run.apply_waiting([waiting.pk]) == (0, 1)
    waiting.refresh_from_db()
    assert waiting.state == Decision.State.REFUSED and waiting.error == "not sent: hv1 is in mode off now"
    assert not Job.objects.exists()


def test_a_waiting_step_of_a_person_deactivated_since_is_not_sent(team, admin, now):
    host = make_host("hv1", team)
    busy = make_domain(host, "busy", memory=3 * GiB, used=3 * GiB)
    at = run.datetime.fromtimestamp(now, tz=run.tz.utc)
    waiting = Decision.objects.create(at=at, kind=Decision.Kind.STEP, code="saturated", host=host, domain=busy, step_kind="resize",
                                      from_kib=3 * GiB, to_kib=4 * GiB, reason="r", mode="recommend", state=Decision.State.WAITING,
                                      decided_by=admin.user, decided_at=at)
    get_user_model().objects.filter(pk=admin.user.pk).update(is_active=False)
    assert run.apply_waiting([waiting.pk]) == (0, 1)
    waiting.refresh_from_db()
    assert waiting.error == "not sent: ada's account was deactivated since" and not Job.objects.exists()


def test_a_move_from_an_automatic_host_to_one_in_recommend_mode_waits_for_a_person(team, now):
    """hv1 (automatic) cannot hold its guests' working sets; hv2, with the most room, is in recommend mode."""
    hv1, hv2 = make_host("hv1", team, usable_gib=10), make_host("hv2", team)
    HostPolicy.objects.create(host=hv1, mode="automatic")
    HostPolicy.objects.create(host=hv2, mode="recommend")
    for name, memory, used in (("a", 6 * GiB, 5 * GiB), ("b", 4 * GiB, 3 * GiB), ("c", 2 * GiB, 1800 * MiB)):
        make_domain(hv1, name, memory=memory, used=used, maxmem=16 * GiB)
    for cycle in range(30):
        run.run_autoscaler(now + 10 * cycle)
        if Decision.objects.filter(step_kind="migrate").exists():
            break
    move = Decision.objects.get(step_kind="migrate")
    assert (move.host_id, move.to_host_id, move.state, move.mode) == (hv1.pk, hv2.pk, Decision.State.RECOMMENDED, "recommend")
    assert not Job.objects.filter(kind=Job.Kind.MIGRATE).exists()


def test_pruning_keeps_each_domains_and_hosts_latest_reason_however_old(team, now):
    """Reasons are written when they change: a domain stable for a week kept none and its page said nothing."""
    from datetime import timedelta

    host = make_host("hv1", team)
    calm = make_domain(host, "calm", memory=2 * GiB, used=1 * GiB)
    at = run.datetime.fromtimestamp(now, tz=run.tz.utc)
    old, older = at - timedelta(days=8), at - timedelta(days=9)
    note = dict(kind=Decision.Kind.NOTE, host=host, reason="r", mode="off", policy_version="1.0", state=Decision.State.NOTED)
    Decision.objects.create(at=older, code="shrink_cooldown", domain=calm, **note)
    kept_domain_note = Decision.objects.create(at=old, code="within_deadband", domain=calm, **note)
    Decision.objects.create(at=older, code="host_off", **note)
    kept_host_notes = {Decision.objects.create(at=old, code=code, **note).pk for code in ("host_off", "no_destination")}
    Decision.objects.create(at=old, kind=Decision.Kind.STEP, code="shrink", host=host, domain=calm, step_kind="resize",
                            from_kib=2 * GiB, to_kib=1 * GiB, reason="r", mode="automatic", state=Decision.State.REFUSED)
    lively = make_domain(host, "lively", memory=2 * GiB, used=1 * GiB)
    Decision.objects.create(at=old, code="within_deadband", domain=lively, **note)  # said again since
    recent = Decision.objects.create(at=at, code="at_floor", domain=lively, **note)
    assert run.prune_decisions(at) == 4
    assert set(Decision.objects.values_list("pk", flat=True)) == {kept_domain_note.pk, recent.pk, *kept_host_notes}


def test_a_what_if_counts_the_team_quota_for_members_but_not_for_a_superuser(team, admin, now):
    Team.objects.filter(pk=team.pk).update(quota_kib=4 * GiB)
    host = make_host("hv1", team)
    HostPolicy.objects.create(host=host, mode="automatic")
    make_domain(host, "busy", memory=3 * GiB, used=2 * GiB)
    answer = run.what_if(admin, 2 * GiB, 2 * GiB)
    assert answer.host_id is None
    assert answer.reason == "no host can take 2,048 MiB within its team's quota of running memory: hv1 (1,024 MiB left)"
    root = Actor.for_user(get_user_model().objects.create_superuser("root"))
    assert run.what_if(root, 2 * GiB, 2 * GiB).host_id == host.pk
