"""The planner: balloon first (by priority, down to working sets and floors), migrate second (fewest bytes,
within budget), and a reason for everything."""

import gc
from dataclasses import replace

import pytest

from domains.autoscaler import planner as planner_module
from domains.autoscaler.planner import Planner, balance_host, plan
from domains.autoscaler.snapshot import (
    BRIEF_FREE_SHARE,
    MIN_FREE_SHARE,
    MODE_OFF,
    MODE_RECOMMEND,
    NO_COINCIDENCE,
    PEAK_MEMORY_S,
    SUSTAINED_SQUEEZE_S,
    Coincidence,
    DomainPolicy,
    HostPolicy,
    Snapshot,
)

from .helpers import GiB, MiB, guest, host, snapshot, steady_target


def sizes_after(p) -> dict[int, int]:
    return {s.domain_id: s.to_kib for s in p.resizes}


def test_a_host_with_room_gives_every_domain_its_target_and_orders_shrinks_before_grows():
    domains = [
        guest(1, 1, used=3 * GiB, memory=3 * GiB),  # wants to grow
        guest(2, 1, used=1 * GiB, memory=6 * GiB),  # has surplus
    ]
    p = plan(snapshot([host(1, 12 * GiB)], domains))
    assert [s.domain_id for s in p.steps] == [2, 1]
    assert p.steps[0].is_shrink and p.steps[1].is_grow
    assert p.migrations == []


def test_a_host_that_cannot_fit_its_targets_takes_headroom_from_low_priority_first():
    low = guest(1, 1, used=3 * GiB, memory=5 * GiB, policy=DomainPolicy(priority=0))
    high = guest(2, 1, used=3 * GiB, memory=5 * GiB, policy=DomainPolicy(priority=10))
    # Targets are about 3.9 GiB each: 7.7 GiB do not fit in 7.2 GiB; the keeps (about 3.3 GiB each) do.
    p = plan(snapshot([host(1, 7 * GiB + 200 * MiB)], [low, high]))
    sizes = sizes_after(p)
    assert p.migrations == []
    assert sizes[2] == steady_target(3 * GiB, 5 * GiB)  # the high priority keeps its target
    assert sizes[1] < steady_target(3 * GiB, 5 * GiB)
    assert sizes[1] + sizes[2] <= 7 * GiB + 200 * MiB
    # Never below the working set: at least MIN_FREE_SHARE stays free.
    assert sizes[1] * 97 // 100 * (1 - MIN_FREE_SHARE) >= 3 * GiB * 0.99
    squeezed = next(s for s in p.steps if s.domain_id == 1)
    assert "short" in squeezed.reason and "(this one: 0)" in squeezed.reason
    assert any(d.code == planner_module.HOST_SHORT for d in p.for_host(1))


def test_within_one_priority_headroom_is_taken_in_proportion():
    a = guest(1, 1, used=2 * GiB, memory=4 * GiB)
    b = guest(2, 1, used=2 * GiB, memory=4 * GiB)
    p = plan(snapshot([host(1, 5 * GiB)], [a, b]))
    sizes = sizes_after(p)
    assert abs(sizes[1] - sizes[2]) <= MiB


def test_the_host_that_cannot_fit_moves_the_fewest_bytes_to_a_host_with_room():
    # hv1 holds three busy guests whose working sets alone exceed it; hv2 has the most room, hv3 some.
    domains = [
        guest(1, 1, used=5 * GiB, memory=6 * GiB, maxmem=16 * GiB),
        guest(2, 1, used=3 * GiB, memory=4 * GiB, maxmem=16 * GiB),
        guest(3, 1, used=1800 * MiB, memory=2 * GiB, maxmem=16 * GiB),
        guest(4, 2, used=1 * GiB, memory=2 * GiB),
        guest(5, 3, used=1 * GiB, memory=2 * GiB),
    ]
    # Keeps (working set + 6 %) of about 5.5, 3.3 and 1.9 GiB: 10.7 GiB on a host of 10 GiB.
    hosts = [host(1, 10 * GiB), host(2, 16 * GiB), host(3, 5 * GiB)]
    p = plan(snapshot(hosts, domains))
    assert len(p.migrations) == 1
    move = p.migrations[0]
    # Short by about 0.7 GiB: domain 3 (2 GiB) covers it with the fewest bytes.
    assert move.domain_id == 3 and move.host_id == 1
    # To the host with the most room after its own ballooning: a tightly packed one would run short next.
    assert move.to_host_id == 2
    assert "fewest bytes" in move.reason and "hv2" in move.reason
    assert move.figures["bytes_kib"] == 2 * GiB
    # Shrinks come before the move, grows after it.
    kinds = [("shrink" if s.is_shrink else s.kind if s.kind == "migrate" else "grow") for s in p.steps]
    assert kinds == sorted(kinds, key=["shrink", "migrate", "grow"].index)


def test_grows_share_what_is_left_of_their_teams_quota_guests_out_of_memory_first_then_by_priority():
    domains = [
        guest(1, 1, used=3 * GiB, memory=3 * GiB),  # out of memory: offered its maxmem
        guest(2, 2, used=3584 * MiB, memory=4 * GiB, policy=DomainPolicy(priority=5)),  # wants about 4.5 GiB
        guest(3, 2, used=3584 * MiB, memory=4 * GiB),  # the same, at priority 0
        guest(4, 3, used=3 * GiB, memory=3 * GiB),  # out of memory, in a team without a quota
        guest(5, 1, used=1 * GiB, memory=6 * GiB),  # a shrink: it gives its part back only when it ends
    ]
    hosts = [host(1, 32 * GiB, team_id=7), host(2, 32 * GiB, team_id=7), host(3, 32 * GiB, team_id=8)]
    unbound = sizes_after(plan(snapshot(hosts, domains)))
    grow_of_2 = unbound[2] - 4 * GiB
    bound = Snapshot(hosts, domains, 1000.0, quota_left_kib={7: 5 * GiB + grow_of_2 + 100 * MiB})
    p = plan(bound)
    sizes = sizes_after(p)
    assert (sizes[1], sizes[2], sizes[4], sizes[5]) == (8 * GiB, unbound[2], 8 * GiB, unbound[5])
    assert 3 not in sizes  # 100 MiB left: under its deadband, so no job
    held = next(d for d in p.decisions if d.domain_id == 3)
    assert held.code == planner_module.HELD_BY_QUOTA
    assert held.reason.startswith(f"stays at 4,096 MiB rather than growing to {unbound[3] // MiB:,} MiB: its team's quota")
    assert "has 100 MiB left" in held.reason and "Without the quota: uses" in held.reason
    assert [s.domain_id for s in p.steps] == [5, 1, 2, 4]  # shrinks, then the grows in host order

    p = plan(Snapshot(hosts, domains, 1000.0, quota_left_kib={7: 2 * GiB}))
    first = next(s for s in p.steps if s.domain_id == 1)
    assert first.to_kib == 5 * GiB and first.reason.startswith("5,120 MiB rather than 8,192 MiB")
    assert {d.domain_id for d in p.decisions if d.code == planner_module.HELD_BY_QUOTA} == {2, 3}


def test_a_host_in_maintenance_receives_nothing_even_with_the_most_room():
    domains = [
        guest(1, 1, used=5 * GiB, memory=6 * GiB, maxmem=16 * GiB),
        guest(2, 1, used=3 * GiB, memory=4 * GiB, maxmem=16 * GiB),
        guest(3, 1, used=1800 * MiB, memory=2 * GiB, maxmem=16 * GiB),
    ]
    hosts = [host(1, 10 * GiB), host(2, 16 * GiB, in_maintenance=True), host(3, 5 * GiB)]
    p = plan(snapshot(hosts, domains))
    assert [(m.domain_id, m.to_host_id) for m in p.migrations] == [(3, 3)]
    hosts[2] = host(3, 5 * GiB, in_maintenance=True)
    p = plan(snapshot(hosts, domains))
    assert not p.migrations
    no_destination = next(d for d in p.decisions if d.code == "no_destination")
    assert no_destination.figures["other_hosts"] == 0


def test_a_domain_moves_only_between_hosts_of_its_team():
    """A domain belongs to its host's team: a move to another team's host would give it away."""
    domains = [
        guest(1, 1, used=5 * GiB, memory=6 * GiB, maxmem=16 * GiB),
        guest(2, 1, used=3 * GiB, memory=4 * GiB, maxmem=16 * GiB),
        guest(3, 1, used=1800 * MiB, memory=2 * GiB, maxmem=16 * GiB),
    ]
    # hv2 (the most room) is another team's; hv3 is the short host's team's.
    hosts = [host(1, 10 * GiB, team_id=7), host(2, 16 * GiB, team_id=8), host(3, 5 * GiB, team_id=7)]
    p = plan(snapshot(hosts, domains))
    assert [(m.domain_id, m.to_host_id) for m in p.migrations] == [(3, 3)]
    hosts[2] = host(3, 5 * GiB, team_id=9)
    p = plan(snapshot(hosts, domains))
    assert not p.migrations
    no_destination = next(d for d in p.decisions if d.code == "no_destination")
    assert no_destination.figures["other_hosts"] == 0 and no_destination.figures["most_room_kib"] == 0


def test_a_host_in_maintenance_sheds_its_domains_within_the_budget_as_room_appears():
    """What did not fit when the host was emptied leaves as soon as another host has room, two at once (the
    budget), receivers ballooned to their targets first: balloon first, migrate second."""
    domains = [guest(i, 1, used=1 * GiB, memory=2 * GiB) for i in range(1, 5)]
    domains.append(guest(5, 2, used=1 * GiB, memory=8 * GiB))  # hv2's idle guest: its target is far below 8 GiB
    hosts = [host(1, 16 * GiB, in_maintenance=True), host(2, 12 * GiB)]
    p = plan(snapshot(hosts, domains))
    assert [(m.host_id, m.to_host_id) for m in p.migrations] == [(1, 2), (1, 2)]  # two at once
    assert "hv1 is in maintenance: move d" in p.migrations[0].reason and "fewest bytes" not in p.migrations[0].reason
    assert any(s.domain_id == 5 and s.is_shrink for s in p.steps)  # hv2 gives back its idle guest's headroom
    maintenance = next(d for d in p.decisions if d.code == "maintenance")
    assert maintenance.reason == "hv1 is in maintenance: its domains move away as the migration budget and the other hosts' room allow"
    # A guest that spiked lately, or moved within the hour, leaves too (relief would keep it): the host must empty.
    spiky = replace(domains[0], watch=domains[0].watch._replace(peak_kib=6 * GiB, peak_at=999.0), last_migrated_at=990.0)
    again = plan(snapshot(hosts, [spiky, domains[-1]]))
    assert [m.domain_id for m in again.migrations] == [1]
    # Emptied: nothing more to say about it.
    emptied = plan(snapshot(hosts, [domains[-1]]))
    assert not [d for d in emptied.decisions if d.host_id == 1]
    # No room anywhere: it says so, and why it would move them (its maintenance, not a lack of room).
    stuck = plan(snapshot([hosts[0], host(2, 2 * GiB)], domains[:4] + [guest(6, 2, used=1800 * MiB, memory=2 * GiB)]))
    no_destination = next(d for d in stuck.decisions if d.code == "no_destination")
    assert no_destination.reason.startswith("hv1 is in maintenance, and no host can take any of its domains")


def test_when_no_single_domain_covers_the_shortfall_the_largest_moves_first():
    domains = [guest(i, 1, used=1800 * MiB, memory=2 * GiB) for i in range(1, 7)]
    hosts = [host(1, 9 * GiB), host(2, 32 * GiB)]
    p = plan(snapshot(hosts, domains))
    # Keeps of about 1.94 GiB each: 11.6 GiB on 9 GiB; two 2 GiB moves are needed.
    assert len(p.migrations) == 2
    assert all(m.to_host_id == 2 for m in p.migrations)


def test_a_migration_goes_only_where_all_the_domain_holds_fits_on_arrival():
    # d1 holds 8 GiB but keeps only about 4.3 GiB: a destination with room for the keep alone would be overfull
    # for the minutes until the domain could be shrunk there.
    domains = [guest(1, 1, used=4 * GiB, memory=8 * GiB, maxmem=16 * GiB), guest(2, 2, used=1 * GiB, memory=2 * GiB, floor=2 * GiB)]
    p = plan(snapshot([host(1, 4 * GiB), host(2, 8 * GiB)], domains))
    assert p.migrations == []
    assert planner_module.NO_DESTINATION in {d.code for d in p.for_host(1)}
    roomy = plan(snapshot([host(1, 4 * GiB), host(2, 11 * GiB)], domains))
    assert [(m.domain_id, m.to_host_id) for m in roomy.migrations] == [(1, 2)]


def test_no_destination_means_a_decision_and_no_migration():
    domains = [guest(1, 1, used=4 * GiB, memory=5 * GiB, maxmem=16 * GiB), guest(2, 2, used=2 * GiB, memory=3 * GiB)]
    p = plan(snapshot([host(1, 4 * GiB), host(2, 4 * GiB)], domains))
    assert p.migrations == []
    codes = {d.code for d in p.for_host(1)}
    assert planner_module.NO_DESTINATION in codes


def test_a_guest_in_a_passing_spike_is_not_moved():
    spiking = guest(1, 1, used=5 * GiB, memory=5 * GiB, maxmem=16 * GiB)  # out of memory just now
    p = plan(snapshot([host(1, 4 * GiB), host(2, 64 * GiB)], [spiking]))
    assert p.migrations == []
    assert planner_module.NOTHING_TO_MOVE in {d.code for d in p.for_host(1)}


def test_the_migration_budget_at_once_is_respected():
    domains = [guest(i, 1, used=1800 * MiB, memory=2 * GiB) for i in range(1, 9)]
    busy_source = host(1, 8 * GiB, migrations_in_flight_out=2)
    p = plan(snapshot([busy_source, host(2, 64 * GiB)], domains))
    assert p.migrations == []
    assert planner_module.BUDGET_REACHED in {d.code for d in p.for_host(1)}

    two_at_most = plan(snapshot([host(1, 8 * GiB), host(2, 64 * GiB)], domains))
    assert len(two_at_most.migrations) == 2  # 2 out at once, though more would be needed


def test_the_budget_counts_in_as_well_as_out():
    domains = [guest(i, 1, used=1800 * MiB, memory=2 * GiB) for i in range(1, 9)]
    receiving = host(2, 64 * GiB, migrations_in_flight_in=1)
    other = host(3, 64 * GiB)
    p = plan(snapshot([host(1, 8 * GiB), receiving, other], domains))
    destinations = [m.to_host_id for m in p.migrations]
    assert destinations.count(2) <= 1 and len(destinations) == 2


def test_the_hourly_limit_is_respected():
    domains = [guest(i, 1, used=1800 * MiB, memory=2 * GiB) for i in range(1, 9)]
    tired = host(1, 8 * GiB, policy=HostPolicy(mode="automatic", target_use=1.0, migrations_per_hour=6), migrations_last_hour=6)
    p = plan(snapshot([tired, host(2, 64 * GiB)], domains))
    assert p.migrations == [] and planner_module.BUDGET_REACHED in {d.code for d in p.for_host(1)}


def test_a_host_receives_a_third_of_its_hourly_budget_and_keeps_the_rest_for_sending():
    domains = [guest(i, 1, used=1800 * MiB, memory=2 * GiB) for i in range(1, 9)]
    per_hour = HostPolicy(mode="automatic", target_use=1.0, migrations_per_hour=12)
    # hv2 has room, but has started 4 of its 12 migrations this hour: the other 8 are for its own guests.
    busy = host(2, 64 * GiB, policy=per_hour, migrations_last_hour=4)
    p = plan(snapshot([host(1, 8 * GiB), busy], domains))
    assert p.migrations == [] and planner_module.NO_DESTINATION in {d.code for d in p.for_host(1)}
    fresh = host(2, 64 * GiB, policy=per_hour, migrations_last_hour=3)
    p = plan(snapshot([host(1, 8 * GiB), fresh], domains))
    assert [m.to_host_id for m in p.migrations] == [2]
    # ... and it may still send them.
    tired = host(1, 8 * GiB, policy=per_hour, migrations_last_hour=11)
    p = plan(snapshot([tired, host(2, 64 * GiB)], domains))
    assert len(p.migrations) == 1


def test_no_destination_says_whether_the_other_hosts_lack_room_or_migration_budget():
    domains = [guest(i, 1, used=1800 * MiB, memory=2 * GiB) for i in range(1, 9)]
    per_hour = HostPolicy(mode="automatic", target_use=1.0, migrations_per_hour=6)
    # hv2 has room but has started a third of its hourly migrations and more; hv3 may receive but has 1 GiB free, not 2.
    busy = host(2, 64 * GiB, policy=per_hour, migrations_last_hour=3)
    small = host(3, 1 * GiB)
    p = plan(snapshot([host(1, 8 * GiB), busy, small], domains))
    assert p.migrations == []
    decision = next(d for d in p.for_host(1) if d.code == planner_module.NO_DESTINATION)
    assert decision.figures["emergency"] is True
    assert decision.figures["least_needed_kib"] == 2 * GiB  # it arrives with all it holds
    assert 0 < decision.figures["most_room_kib"] < 2 * GiB
    assert (decision.figures["other_hosts"], decision.figures["other_hosts_over_budget"]) == (2, 1)
    assert "short by" in decision.reason and "the smallest needs 2,048 MiB there" in decision.reason
    assert "1 of the other 2 hosts may not receive now" in decision.reason

    alone = plan(snapshot([host(1, 8 * GiB)], domains))
    assert "no other host in automatic or recommend mode" in next(
        d for d in alone.for_host(1) if d.code == planner_module.NO_DESTINATION
    ).reason


def test_a_no_destination_decision_kept_before_its_figures_existed_still_reads():
    from domains.autoscaler.reasons import explain

    old = explain(planner_module.NO_DESTINATION, {"host": "hv1", "shortfall_kib": 1024 * MiB})
    assert old == "hv1 is short by 1,024 MiB after taking headroom down to working sets and floors, and no host with migration budget has room for any of its domains"


def test_a_recently_migrated_domain_is_not_moved_again():
    domains = [guest(1, 1, used=1800 * MiB, memory=2 * GiB, last_migrated_at=900.0), guest(2, 1, used=1800 * MiB, memory=2 * GiB)]
    p = plan(snapshot([host(1, 3 * GiB), host(2, 64 * GiB)], domains, now=1000.0))
    assert [m.domain_id for m in p.migrations] == [2]


def test_migrations_in_flight_are_waited_for_instead_of_starting_more():
    leaving = guest(1, 1, used=1800 * MiB, memory=2 * GiB, busy=True, migrating_to=2)
    staying = guest(2, 1, used=1800 * MiB, memory=2 * GiB)
    p = plan(snapshot([host(1, 3 * GiB, migrations_in_flight_out=1), host(2, 64 * GiB, incoming_kib=2 * GiB)], [leaving, staying]))
    assert p.migrations == []
    assert planner_module.WAITING_FOR_MIGRATIONS in {d.code for d in p.for_host(1)}


def test_a_passing_spike_takes_free_room_but_never_triggers_a_migration():
    spiking = guest(1, 1, used=6 * GiB, memory=2 * GiB, maxmem=8 * GiB)  # saturated
    other = guest(2, 1, used=2 * GiB, memory=3 * GiB)
    p = plan(snapshot([host(1, 8 * GiB), host(2, 64 * GiB)], [spiking, other]))
    assert p.migrations == []
    grown = sizes_after(p)[1]
    assert 2 * GiB < grown <= 8 * GiB - steady_target(2 * GiB, 3 * GiB) * 0.8


def test_a_guest_out_of_memory_takes_even_a_little_room_that_a_calm_guest_would_leave_to_the_deadband():
    spiking = guest(1, 1, used=8 * GiB, memory=8 * GiB, maxmem=16 * GiB)  # saturated
    p = plan(snapshot([host(1, 8 * GiB + 200 * MiB)], [spiking]))
    assert sizes_after(p) == {1: 8 * GiB + 200 * MiB}  # 2.4 %: under the 5 % deadband, but every MiB counts


def test_a_passing_spike_may_use_the_room_kept_above_the_planning_capacity():
    spiking = guest(1, 1, used=6 * GiB, memory=2 * GiB, maxmem=6 * GiB + 512 * MiB)  # saturated
    other = guest(2, 1, used=2 * GiB, memory=2600 * MiB)
    # 9 GiB usable, 95 % planned: the spike's maxmem fits only with the 5 % kept for spikes.
    p = plan(snapshot([host(1, 9 * GiB, target_use=0.95)], [spiking, other]))
    sizes = sizes_after(p)
    assert sizes[1] == 6 * GiB + 512 * MiB
    assert sizes.get(2, 2600 * MiB) >= steady_target(2 * GiB, 2600 * MiB) * 0.9
    assert sum(sizes.get(i, d.memory_kib) for i, d in ((1, spiking), (2, other))) <= 9 * GiB

    calm = guest(1, 1, used=2 * GiB, memory=6 * GiB + 512 * MiB, maxmem=6 * GiB + 512 * MiB)
    p = plan(snapshot([host(1, 9 * GiB, target_use=0.95)], [calm, other]))
    assert sum(s.to_kib for s in p.resizes) <= 9 * GiB * 0.95  # without a spike the room stays free


def test_a_lasting_shortage_of_a_saturated_guest_leads_to_a_migration():

    from domains.autoscaler.snapshot import PERSISTENT_SATURATION_S, BalloonWatch

    spiking = guest(1, 1, used=6 * GiB, memory=5 * GiB, maxmem=8 * GiB)
    spiking = replace(spiking, watch=BalloonWatch(requested_kib=5 * GiB, saturated_since=1000.0 - PERSISTENT_SATURATION_S))
    other = guest(2, 1, used=2 * GiB, memory=2600 * MiB)
    p = plan(snapshot([host(1, 8 * GiB), host(2, 64 * GiB)], [spiking, other]))
    assert len(p.migrations) == 1


def test_hosts_that_are_off_or_offline_are_left_alone_and_take_no_migrations():
    domains = [guest(1, 1, used=300 * MiB, memory=6 * GiB), guest(2, 2, used=300 * MiB, memory=6 * GiB)]
    p = plan(snapshot([host(1, 64 * GiB, mode=MODE_OFF), host(2, 64 * GiB, online=False)], domains))
    assert p.steps == []
    assert [d.code for d in p.decisions] == [planner_module.HOST_OFF, planner_module.HOST_OFFLINE]

    short = [guest(3, 3, used=1800 * MiB, memory=2 * GiB), guest(4, 3, used=1800 * MiB, memory=2 * GiB)]
    p = plan(snapshot([host(1, 64 * GiB, mode=MODE_OFF), host(3, 3 * GiB)], short))
    assert p.migrations == []


def test_recommend_mode_plans_like_automatic():
    domains = [guest(1, 1, used=300 * MiB, memory=6 * GiB)]
    automatic = plan(snapshot([host(1, 64 * GiB)], domains))
    recommend = plan(snapshot([host(1, 64 * GiB, mode=MODE_RECOMMEND)], domains))
    assert automatic.steps == recommend.steps


def test_the_plan_is_a_pure_function_of_the_snapshot():
    domains = [guest(i, 1 + i % 3, used=(i % 5 + 1) * 700 * MiB, memory=(i % 4 + 1) * GiB) for i in range(1, 40)]
    hosts = [host(1, 20 * GiB), host(2, 20 * GiB), host(3, 30 * GiB)]
    assert plan(snapshot(hosts, domains)) == plan(snapshot(hosts, domains))


def test_balance_host_never_hands_out_more_than_capacity():
    domains = [guest(i, 1, used=(i % 7 + 1) * 400 * MiB, memory=(i % 3 + 2) * GiB, policy=DomainPolicy(priority=i % 3)) for i in range(1, 30)]
    from domains.autoscaler.controller import want_for

    wants = [want_for(d, 0.0) for d in domains]
    keeps = sum(w.keep_kib for w in wants)
    targets = sum(w.target_kib for w in wants)
    assert any(w.saturated for w in wants)
    for capacity in range(keeps, targets + 1, (targets - keeps) // 17):
        balance = balance_host(capacity, wants)
        assert balance.shortfall_kib == 0
        assert sum(balance.sizes.values()) <= capacity
        # While a guest out of memory lacks room, the others lend headroom down to their brief size.
        lending = any(balance.sizes[w.domain.id] < w.target_kib for w in wants if w.saturated)
        for w in wants:
            least = w.brief_kib if lending and not w.saturated else w.keep_kib
            assert least <= balance.sizes[w.domain.id] <= w.target_kib


def test_a_guest_out_of_memory_on_a_full_host_borrows_headroom_down_to_a_brief_free_share():
    spiking = guest(1, 1, used=4 * GiB, memory=4 * GiB, maxmem=8 * GiB)  # saturated: nothing unused
    neighbours = [guest(i, 1, used=3 * GiB, memory=4 * GiB) for i in (2, 3, 4)]
    # 16 GiB held; the neighbours' keeps (about 3.3 GiB each) leave the spiking guest only its 4 GiB.
    p = plan(snapshot([host(1, 16 * GiB)], [spiking, *neighbours]))
    sizes = sizes_after(p)
    assert sizes[1] > 4 * GiB
    for i in (2, 3, 4):
        available = sizes[i] * 97 // 100
        assert available * (1 - BRIEF_FREE_SHARE) >= 3 * GiB * 0.995  # never into its working set
        assert sizes[i] < 3 * GiB / 0.97 / (1 - MIN_FREE_SHARE)  # below its keep, for the spike's sake
    assert sum(sizes.values()) <= 16 * GiB
    lent = next(s for s in p.steps if s.domain_id == 2)
    assert "lent below its margin" in lent.reason and "to a guest out of memory" in lent.reason


def test_a_host_squeezed_for_long_moves_domains_away_to_the_host_with_most_room():

    from domains.autoscaler.snapshot import SUSTAINED_SQUEEZE_S

    # Targets (about 2.6 GiB each) do not fit in 9 GiB; working sets and margin (about 2.2 GiB) do.
    domains = [guest(i, 1, used=2 * GiB, memory=2200 * MiB) for i in (1, 2, 3, 4)]
    hosts = [host(1, 9 * GiB), host(2, 32 * GiB), host(3, 16 * GiB)]
    fresh = plan(snapshot(hosts, domains, now=1000.0))
    assert fresh.migrations == [] and fresh.squeezed_since[1] == 1000.0  # a stopgap, for now

    hosts[0] = replace(hosts[0], squeezed_since=1000.0 - SUSTAINED_SQUEEZE_S)
    lasting = plan(snapshot(hosts, domains, now=1000.0))
    assert len(lasting.migrations) == 1
    move = lasting.migrations[0]
    assert move.to_host_id == 2 and "long lacked room" in move.reason
    assert planner_module.SUSTAINED_SQUEEZE in {d.code for d in lasting.for_host(1)}


def test_relief_leaves_a_guest_that_spiked_lately_where_it_is():

    from domains.autoscaler.snapshot import SUSTAINED_SQUEEZE_S, BalloonWatch

    spiky = guest(1, 1, used=2 * GiB, memory=2200 * MiB)
    spiky = replace(spiky, watch=BalloonWatch(requested_kib=2200 * MiB, peak_kib=6 * GiB, peak_at=900.0))
    steady = [guest(i, 1, used=2 * GiB, memory=2200 * MiB) for i in (2, 3, 4)]
    hosts = [host(1, 9 * GiB, squeezed_since=1000.0 - SUSTAINED_SQUEEZE_S), host(2, 64 * GiB)]
    p = plan(snapshot(hosts, [spiky, *steady], now=1000.0))
    assert p.migrations and all(m.domain_id != 1 for m in p.migrations)


def test_a_domain_peak_is_remembered_for_a_while():

    from domains.autoscaler.snapshot import PEAK_MEMORY_S

    busy = guest(1, 1, used=3 * GiB, memory=6 * GiB)
    first = plan(snapshot([host(1, 64 * GiB)], [busy], now=1000.0))
    peak = first.watches[1].peak_kib
    assert peak == first.steps[0].to_kib

    calm = replace(guest(1, 1, used=1 * GiB, memory=peak), watch=first.watches[1])
    later = plan(snapshot([host(1, 64 * GiB)], [calm], now=1000.0 + PEAK_MEMORY_S / 2))
    assert later.watches[1].peak_kib == peak
    much_later = plan(snapshot([host(1, 64 * GiB)], [calm], now=1000.0 + PEAK_MEMORY_S + 10))
    assert much_later.watches[1].peak_kib < peak


def test_the_room_kept_for_spikes_is_not_handed_out_twice_on_a_host_already_over():
    spiking = guest(1, 1, used=6 * GiB, memory=2560 * MiB, maxmem=8 * GiB)  # saturated
    others = [guest(i, 1, used=1900 * MiB, memory=2150 * MiB) for i in (2, 3, 4)]
    usable = 9 * GiB  # 2.5 GiB + 3 x 2.1 GiB: within usable, above the 95 % planning capacity
    p = plan(snapshot([host(1, usable, target_use=0.95)], [spiking, *others]))
    sizes = sizes_after(p)
    total = sum(sizes.get(d.id, d.memory_kib) for d in (spiking, *others))
    assert total <= usable


def test_relief_on_a_fleet_that_cannot_hold_every_target_plans_at_the_working_sets():
    from domains.autoscaler.snapshot import SUSTAINED_SQUEEZE_S

    # Two hosts, each squeezed at targets (about 2.6 GiB each for 4 x 2.2 GiB guests on 9 GiB) for long, but
    # holding their working sets and margin (about 2.2 GiB each) with room to spare: neither could take the
    # other's targets, so moving would only carry the lack of room across; nothing moves.
    squeezed_since = 1000.0 - SUSTAINED_SQUEEZE_S
    domains = [guest(i, 1 + i % 2, used=2 * GiB, memory=2200 * MiB) for i in range(1, 9)]
    hosts = [host(1, 10 * GiB, squeezed_since=squeezed_since), host(2, 10 * GiB, squeezed_since=squeezed_since)]
    p = plan(snapshot(hosts, domains, now=1000.0))
    assert p.migrations == []
    assert p.squeezed_since == {1: None, 2: None}


def test_relief_moves_enough_to_leave_a_margin_in_one_move():
    from domains.autoscaler.snapshot import SUSTAINED_SQUEEZE_S

    # hv1 lacks about 0.2 GiB for its targets (four of about 2.6 GiB) and its small guest's 512 MiB would cover
    # that, but not the relief margin (5 % of capacity) that keeps hv1 from lacking room again at the next rise:
    # one of the larger guests goes, in one move.
    domains = [guest(i, 1, used=2 * GiB, memory=2200 * MiB) for i in (1, 2, 3, 4)]
    domains.append(guest(5, 1, used=400 * MiB, memory=512 * MiB))
    hosts = [host(1, 10 * GiB + 700 * MiB, squeezed_since=1000.0 - SUSTAINED_SQUEEZE_S), host(2, 64 * GiB)]
    p = plan(snapshot(hosts, domains, now=1000.0))
    assert len(p.migrations) == 1 and p.migrations[0].domain_id != 5

    # When the only other host has spent the third of its hourly budget it may receive with, hv1 says so, in the
    # words of relief (no working set at risk), not of an emergency.
    hosts[1] = host(2, 64 * GiB, policy=HostPolicy(mode="automatic", migrations_per_hour=6), migrations_last_hour=3)
    waiting = plan(snapshot(hosts, domains, now=1000.0))
    decision = next(d for d in waiting.for_host(1) if d.code == planner_module.NO_DESTINATION)
    assert decision.figures["emergency"] is False
    assert decision.reason.startswith("hv1 lacks ") and "for its domains' recent peaks" in decision.reason
    assert "the most room on a host that may receive is 0 MiB; 1 of the other 1 hosts may not receive now" in decision.reason


def test_spikes_that_come_together_are_remembered_and_planned_for():
    spiking = [guest(i, 1, used=3 * GiB, memory=3 * GiB) for i in (1, 2)]  # two passing spikes at once
    calm = [guest(3, 1, used=1 * GiB, memory=1300 * MiB)]
    p = plan(snapshot([host(1, 16 * GiB), host(2, 64 * GiB)], spiking + calm))
    together = p.coincidences[1]
    # The planning held room for one of them to reach all it has at its free share; the other came too.
    assert together.kib >= (3 * GiB / 0.8 - 3 * GiB) * 0.99 and together.at == 1000.0
    assert p.coincidences[2] == NO_COINCIDENCE

    # Later, all calm: a host whose targets fit, but not with what its spikes needed together, starts the
    # relief clock; without the memory it would not, and the memory ends after PEAK_MEMORY_S.
    calm = [guest(i, 1, used=2 * GiB, memory=2600 * MiB) for i in (1, 2, 3)]
    remembered = Coincidence(2 * GiB, 2 * GiB, 1000.0)
    hosts = [host(1, 9 * GiB, coincidence=remembered), host(2, 64 * GiB)]
    assert plan(snapshot(hosts, calm, now=1100.0)).squeezed_since[1] == 1100.0
    hosts[0].squeezed_since = 1100.0 - SUSTAINED_SQUEEZE_S
    relief = plan(snapshot(hosts, calm, now=1100.0))
    assert relief.migrations and "counting 2,048 MiB for spikes that came together" in relief.for_host(1)[0].reason
    assert plan(snapshot([host(1, 9 * GiB), host(2, 64 * GiB)], calm, now=1100.0)).squeezed_since[1] is None
    expired = plan(snapshot(hosts, calm, now=1000.0 + PEAK_MEMORY_S + 10))
    assert expired.squeezed_since[1] is None and expired.coincidences[1] == NO_COINCIDENCE


def test_a_plan_leaves_the_cyclic_collector_as_it_found_it_even_when_it_fails():
    assert gc.isenabled()
    plan(snapshot([host(1, 8 * GiB)], [guest(1, 1, used=1 * GiB, memory=2 * GiB)]))
    assert gc.isenabled()
    with pytest.raises(AttributeError):
        plan(None)  # not a snapshot
    assert gc.isenabled()
    gc.disable()
    try:
        plan(snapshot([host(1, 8 * GiB)], []))
        assert not gc.isenabled()  # a caller that paused it keeps it paused
    finally:
        gc.enable()


def test_an_emergency_move_does_not_squeeze_its_receiver_but_a_what_if_may():
    # hv1's working sets do not fit (keeps about 6.2 + 4.4 GiB on 10 GiB): an emergency. hv2 and hv3 have room
    # for d2 (keep 4.4 GiB) only if their own guest gives back its headroom (target 6.5, keep 5.5 GiB).
    hosts = [host(1, 10 * GiB), host(2, 10 * GiB), host(3, 10 * GiB)]
    domains = [
        guest(1, 1, used=5 * GiB + 600 * MiB, memory=5 * GiB + 800 * MiB),
        guest(2, 1, used=4 * GiB, memory=4 * GiB + 300 * MiB),
        guest(3, 2, used=5 * GiB, memory=7 * GiB),
        guest(4, 3, used=5 * GiB, memory=7 * GiB),
    ]
    own_cycle = plan(snapshot(hosts, domains))
    assert own_cycle.migrations == []
    no_destination = next(d for d in own_cycle.for_host(1) if d.code == planner_module.NO_DESTINATION)
    assert no_destination.figures["emergency"] is True
    assert no_destination.figures["most_room_kib"] < no_destination.figures["least_needed_kib"]
    assert "no host can take any of its domains" in no_destination.reason
    assert "all 2 other hosts may receive" in no_destination.reason  # room lacks, not budget
    # The receivers keep their guests' headroom: hv2's and hv3's guests get their targets.
    assert all(s.to_kib == s.figures["target_kib"] for s in own_cycle.resizes if s.host_id in (2, 3))

    asked = Planner(snapshot(hosts, domains), squeeze_receivers=True).run()
    [move] = asked.migrations
    assert move.domain_id == 2 and move.to_host_id in (2, 3)
    assert move.figures["squeezes_destination"] is True
    assert "after taking back some of its headroom" in move.reason
