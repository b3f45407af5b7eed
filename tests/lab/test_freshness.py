"""Stale balloon statistics: a pure rule, so no lab needed."""

from hosts.drivers.freshness import balloon_stats_stale


def test_a_new_timestamp_is_fresh():
    assert not balloon_stats_stale(1_700_000_000, 1_700_000_005)


def test_the_same_timestamp_twice_is_stale():
    assert balloon_stats_stale(1_700_000_000, 1_700_000_000)


def test_the_first_sample_is_fresh():
    assert not balloon_stats_stale(None, 1_700_000_000)


def test_zero_means_qemu_has_no_report_from_the_guest():
    assert balloon_stats_stale(None, 0)
    assert balloon_stats_stale(1_700_000_000, 0)


def test_no_timestamp_at_all_is_not_stale():
    # The test driver and shut-off domains give no balloon figures: nothing to be stale about.
    assert not balloon_stats_stale(None, None)
    assert not balloon_stats_stale(1_700_000_000, None)
