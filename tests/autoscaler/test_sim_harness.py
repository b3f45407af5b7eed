"""bench/autoscale_sim.py's scoring: violations are all counted, and those that no placement could avoid (the
fleet's working sets above its usable memory) apart from the rest, so that the "0 violations" target reads only
what an engine could have done."""

import importlib.util
from pathlib import Path

GiB = 1024 * 1024

_spec = importlib.util.spec_from_file_location("autoscale_sim", Path(__file__).parents[2] / "bench" / "autoscale_sim.py")
sim = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sim)


def one_host_fleet(usable_kib: int, actual_kib: int) -> "sim.Fleet":
    # A steady guest of 4 GiB working set (maxmem 10 GiB).
    return sim.Fleet([sim.SimHost(1, "hv1", usable_kib, 0)], [sim.guest(1, 1, "steady", 10 * GiB, 0, base=4 * GiB, actual=actual_kib)])


def test_a_guest_given_less_than_its_working_set_on_a_fleet_with_room_is_an_avoidable_violation():
    score = sim.Score(static_kib=1)
    score.measure(one_host_fleet(usable_kib=16 * GiB, actual_kib=3 * GiB), t=0.0)
    result = score.result()
    assert result["violations"] == 1
    assert result["violations_avoidable"] == 1
    assert result["violations_no_placement_avoids"] == 0
    assert result["violations_in_first_30_min"] == 1


def test_a_violation_while_the_fleet_needs_more_than_it_has_is_counted_as_unavoidable():
    score = sim.Score(static_kib=1)
    score.measure(one_host_fleet(usable_kib=3 * GiB, actual_kib=3 * GiB), t=sim.COLD_START_S)
    result = score.result()
    assert result["violations"] == 1
    assert result["violations_no_placement_avoids"] == 1
    assert result["violations_avoidable"] == 0
    assert result["violations_in_first_30_min"] == 0
    assert score.fleet_short_cycles == 1


def test_a_warm_up_is_not_scored():
    fleet = one_host_fleet(usable_kib=16 * GiB, actual_kib=6 * GiB)
    score, _ = sim.simulate(fleet, sim.BalloonWeb(), seconds=60, warmup=120)
    assert score.cycles == 6  # 60 s of 10 s cycles; the 120 s before are not counted
    assert score.violations == 0
