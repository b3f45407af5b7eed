"""Stuck balloons, "make room for one more", and consolidation."""

from dataclasses import replace

from domains.autoscaler import controller
from domains.autoscaler.consolidate import consolidate, lower_bound
from domains.autoscaler.planner import Planner, plan
from domains.autoscaler.snapshot import MODE_AUTOMATIC, MODE_OFF, STUCK_AFTER_CYCLES, STUCK_RETRY_BASE_S, HostPolicy
from domains.autoscaler.whatif import FREE, MIGRATIONS, NO_ROOM, SQUEEZED, TARGETS, NewDomain, make_room

from .helpers import GiB, MiB, guest, host, snapshot


def cycles(domain, hosts, start: float, count: int, every: float = 5.0):
    """Run the planner `count` times; the guest's balloon never moves (actual stays put). The first cycle
    sees the target for the first time and gives the balloon time; the count of cycles behind starts after it."""
    plans = []
    now = start
    for _ in range(count):
        p = plan(snapshot(hosts, [domain], now=now))
        plans.append(p)
        domain = replace(domain, watch=p.watches[domain.id])
        now += every
    return plans, domain


def test_a_balloon_that_does_not_approach_its_target_is_flagged_stuck_and_excluded():
    # Asked for 2 GiB, the guest still holds 6 GiB (no balloon driver, or it will not give memory back).
    d = guest(1, 1, used=300 * MiB, memory=6 * GiB, actual=6 * GiB, requested_kib=2 * GiB)
    hosts = [host(1, 64 * GiB)]
    plans, d = cycles(d, hosts, 1000.0, STUCK_AFTER_CYCLES + 2)
    assert not plans[STUCK_AFTER_CYCLES - 1].watches[1].stuck
    flagged = plans[STUCK_AFTER_CYCLES]
    assert flagged.watches[1].stuck
    assert flagged.steps == [] and flagged.codes(1) == {controller.STUCK}
    assert "balloon stuck" in flagged.for_domain(1)[0].reason
    # Still excluded on the next cycle, before its retry is due.
    assert plans[-1].steps == [] and plans[-1].codes(1) == {controller.STUCK}


def test_a_stuck_balloon_is_retried_with_backoff_and_cleared_when_it_moves():
    d = guest(1, 1, used=300 * MiB, memory=6 * GiB, actual=6 * GiB, requested_kib=2 * GiB)
    hosts = [host(1, 64 * GiB)]
    plans, d = cycles(d, hosts, 1000.0, STUCK_AFTER_CYCLES + 1)
    stuck_at = d.watch.stuck_since
    assert d.watch.retry_at == stuck_at + STUCK_RETRY_BASE_S

    retry_plan = plan(snapshot(hosts, [d], now=d.watch.retry_at))
    assert [s.kind for s in retry_plan.steps] == ["resize"]
    assert "retry #1" in retry_plan.steps[0].reason
    d = replace(d, watch=retry_plan.watches[1])
    assert d.watch.retries == 1 and d.watch.retry_at == retry_plan.now + 2 * STUCK_RETRY_BASE_S  # backoff doubles

    # The balloon finally reaches the target: everything is forgotten.
    target = retry_plan.steps[0].to_kib
    reached = replace(d, memory_kib=target, actual_kib=target, available_kib=target * 97 // 100,
                      unused_kib=target * 97 // 100 - 300 * MiB, requested_kib=target)
    p = plan(snapshot(hosts, [reached], now=retry_plan.now + 5))
    assert not p.watches[1].stuck and p.watches[1].retries == 0


def test_a_stuck_balloon_is_not_counted_on_when_its_host_runs_short():
    stuck = guest(1, 1, used=300 * MiB, memory=6 * GiB, actual=6 * GiB, requested_kib=2 * GiB)
    _, stuck = cycles(stuck, [host(1, 64 * GiB)], 1000.0, STUCK_AFTER_CYCLES + 1)
    assert stuck.watch.stuck
    # The host is short; the stuck domain's 6 GiB stay counted: the others are squeezed or moved instead.
    busy = [guest(i, 1, used=1800 * MiB, memory=2 * GiB) for i in (2, 3, 4)]
    p = plan(snapshot([host(1, 11 * GiB), host(2, 64 * GiB)], [stuck, *busy], now=1020.0))
    assert all(s.domain_id != 1 for s in p.steps)
    assert len(p.migrations) == 1 and p.migrations[0].domain_id != 1


def test_what_if_a_host_with_free_room_takes_the_new_domain_as_it_is():
    hosts = [host(1, 16 * GiB), host(2, 16 * GiB)]
    domains = [guest(1, 1, used=1 * GiB, memory=1300 * MiB), guest(2, 2, used=6 * GiB, memory=7800 * MiB)]
    answer = make_room(snapshot(hosts, domains), NewDomain("new", 4 * GiB, 8 * GiB))
    assert answer.grade == FREE
    # The tightest fit that needs no change: hv2 has 8 GiB free, hv1 almost 15.
    assert answer.host_id == 2
    assert [s.kind for s in answer.plan.steps] == ["place"]


def test_what_if_others_shrink_to_their_targets():
    hosts = [host(1, 8 * GiB), host(2, 8 * GiB, mode=MODE_OFF)]
    domains = [guest(1, 1, used=500 * MiB, memory=6 * GiB), guest(2, 1, used=500 * MiB, memory=1 * GiB)]
    answer = make_room(snapshot(hosts, domains), NewDomain("new", 3 * GiB, 4 * GiB))
    assert answer.grade == TARGETS and answer.host_id == 1
    *resizes, place = answer.plan.steps
    assert place.kind == "place" and place.host_id == 1
    assert resizes and all(s.is_shrink for s in resizes)
    assert "once its domains are at their targets" in answer.reason


def test_what_if_others_give_back_headroom_down_to_their_working_sets():
    hosts = [host(1, 10 * GiB)]
    domains = [guest(i, 1, used=2 * GiB, memory=2800 * MiB) for i in (1, 2, 3)]
    # Targets about 2.6 GiB each leave 2.3 GiB; keeps about 2.2 GiB leave 3.4 GiB.
    answer = make_room(snapshot(hosts, domains), NewDomain("new", 3 * GiB, 4 * GiB))
    assert answer.grade == SQUEEZED
    shrinks = [s for s in answer.plan.steps if s.kind == "resize"]
    assert len(shrinks) == 3 and all(s.is_shrink for s in shrinks)
    assert sum(s.to_kib for s in shrinks) + 3 * GiB <= 10 * GiB


def test_what_if_domains_move_away_to_make_room():
    hosts = [host(1, 10 * GiB), host(2, 10 * GiB)]
    domains = [guest(1, 1, used=4 * GiB, memory=5 * GiB), guest(2, 2, used=4 * GiB, memory=5 * GiB),
               guest(3, 2, used=1 * GiB, memory=1300 * MiB)]
    answer = make_room(snapshot(hosts, domains), NewDomain("big", 6 * GiB, 8 * GiB))
    assert answer.grade == MIGRATIONS
    moves = [s for s in answer.plan.steps if s.kind == "migrate"]
    assert len(moves) == 1
    assert moves[0].to_host_id != answer.host_id
    assert answer.plan.steps[-1].kind == "place" and answer.plan.steps[-1].host_id == answer.host_id


def what_if_squeezing_hv2():
    """hv1 takes 6.5 GiB once d1 (4.3 GiB) moves away, and only hv2 can take d1, by taking back some of d2's
    headroom (room at its targets 3.6 GiB, at its keeps 4.6 GiB)."""
    hosts = [host(1, 10 * GiB), host(2, 10 * GiB)]
    domains = [guest(1, 1, used=4 * GiB, memory=4 * GiB + 300 * MiB), guest(2, 2, used=5 * GiB, memory=7 * GiB)]
    return hosts, domains, NewDomain("new", 6 * GiB + 512 * MiB, 8 * GiB)


def test_what_if_says_when_a_receiver_must_give_back_headroom():
    hosts, domains, new = what_if_squeezing_hv2()
    answer = make_room(snapshot(hosts, domains), new)
    assert answer.grade == MIGRATIONS and answer.host_id == 1
    [move] = [s for s in answer.plan.steps if s.kind == "migrate"]
    assert move.domain_id == 1 and move.to_host_id == 2 and move.figures["squeezes_destination"] is True
    assert "hv2 can take them only by taking back their own domains' headroom" in answer.reason


def test_what_if_prefers_a_plan_whose_receivers_keep_their_headroom_over_a_cheaper_one():
    hosts, domains, new = what_if_squeezing_hv2()
    # hv3 may send but not receive: it takes the new domain once d4 (2.6 GiB) moves to hv1, at hv1's targets,
    # and its over-provisioned d3 shrinks; more bytes than hv1's plan, but no receiver is squeezed.
    hosts.append(host(3, 10 * GiB, policy=HostPolicy(mode=MODE_AUTOMATIC, target_use=1.0, migrations_in=0)))
    domains += [guest(3, 3, used=2 * GiB, memory=7 * GiB), guest(4, 3, used=2 * GiB, memory=2 * GiB + 600 * MiB)]
    answer = make_room(snapshot(hosts, domains), new)
    assert answer.grade == MIGRATIONS and answer.host_id == 3
    [move] = [s for s in answer.plan.steps if s.kind == "migrate"]
    assert move.domain_id == 4 and move.to_host_id == 1 and move.figures["squeezes_destination"] is False
    assert "headroom" not in answer.reason
    # hv1's plan, which squeezes hv2, moves fewer bytes.
    squeezing = make_room(snapshot(*what_if_squeezing_hv2()[:2]), new)
    assert squeezing.host_id == 1 and squeezing.candidates[0].cost_kib < answer.candidates[2].cost_kib


def test_a_what_if_trial_that_reuses_the_wants_plans_as_one_that_computes_them():
    hosts, domains, new = what_if_squeezing_hv2()
    hosts.append(host(3, 8 * GiB, mode=MODE_OFF))
    base = Planner(snapshot(hosts, domains))
    base.balance()
    for squeeze_receivers in (False, True):
        fresh = Planner(snapshot(hosts, domains), {1: new.memory_kib}, squeeze_receivers).run()
        reused = Planner(snapshot(hosts, domains), {1: new.memory_kib}, squeeze_receivers, wants_of=base).run()
        assert reused.steps == fresh.steps and reused.decisions == fresh.decisions
        assert reused.watches == fresh.watches


def test_what_if_no_host_can_take_it():
    fleet = snapshot([host(1, 4 * GiB)], [guest(1, 1, used=3 * GiB, memory=3500 * MiB)])
    answer = make_room(fleet, NewDomain("big", 2 * GiB, 2 * GiB))
    assert answer.grade == NO_ROOM and answer.host_id is None and answer.plan.steps == []
    assert "no host can take 2,048 MiB, even with others shrunk to their floors and working sets" in answer.reason
    # Larger than any host could ever hold: the answer says that, not that floors or budgets are in the way.
    huge = make_room(fleet, NewDomain("huge", 8 * GiB, 8 * GiB))
    assert huge.grade == NO_ROOM
    assert huge.reason == "no host can take 8,192 MiB: the largest, hv1, plans for at most 4,096 MiB of guests"


def test_what_if_leaves_out_the_hosts_of_a_team_whose_quota_has_too_little_left():
    hosts = [host(1, 16 * GiB, team_id=7), host(2, 16 * GiB, team_id=8)]
    domains = [guest(1, 1, used=1 * GiB, memory=1300 * MiB), guest(2, 2, used=6 * GiB, memory=7800 * MiB)]
    fleet = snapshot(hosts, domains)
    answer = make_room(replace(fleet, quota_left_kib={8: 2 * GiB}), NewDomain("new", 4 * GiB, 8 * GiB))
    assert (answer.grade, answer.host_id) == (FREE, 1)  # hv2 (the tighter fit) is team 8's, with 2 GiB left
    nowhere = make_room(replace(fleet, quota_left_kib={7: 1 * GiB, 8: 2 * GiB}), NewDomain("new", 4 * GiB, 8 * GiB))
    assert nowhere.grade == NO_ROOM
    assert nowhere.reason == ("no host can take 4,096 MiB within its team's quota of running memory: "
                              "hv1 (1,024 MiB left), hv2 (2,048 MiB left)")


def test_lower_bound():
    assert lower_bound([10, 10, 10], 25) == 3
    assert lower_bound([10, 10, 10], 20) == 2
    assert lower_bound([30, 10, 10], 25) == 1


def test_consolidation_empties_the_least_loaded_hosts():
    hosts = [host(i, 16 * GiB) for i in range(1, 6)]
    # Each guest's target is about 1.3 GiB (used 1 GiB): 10 of them fit on one host.
    domains = [guest(i, 1 + i % 5, used=1 * GiB, memory=1300 * MiB) for i in range(1, 21)]
    result = consolidate(snapshot(hosts, domains))
    assert result.lower_bound == 2 and result.hosts_used == 2
    assert not result.unplaced
    assert len(set(result.placement.values())) == 2
    assert result.moved_kib == sum(s.figures["bytes_kib"] for s in result.steps)
    loads = {}
    for domain_id, host_id in result.placement.items():
        loads[host_id] = loads.get(host_id, 0) + 1300 * MiB
    assert max(loads.values()) <= 16 * GiB


def test_the_engine_imports_without_django():
    import subprocess
    import sys

    code = (
        "import sys, domains.autoscaler.planner, domains.autoscaler.whatif, domains.autoscaler.consolidate; "
        "assert not [m for m in sys.modules if m.startswith('django')], 'the engine imported Django'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
