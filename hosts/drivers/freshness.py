"""Whether a domain's balloon statistics are new since the last poll. Pure: no libvirt, no database.

`balloon.last-update` is the host time (epoch seconds) at which QEMU last received statistics from the guest's
balloon driver; the guest sends them every stats period. QEMU reports 0 before the first report arrives (the
guest is still booting, or it has no balloon driver), and libvirt gives no timestamp at all for a driver
without guest statistics (the test driver; a shut-off domain).
"""


def balloon_stats_stale(previous_last_update: int | None, current_last_update: int | None) -> bool:
    """True when the figures did not come from the guest since the last poll.

    - no timestamp (the driver has no guest statistics): not stale; there is nothing to be stale about;
    - 0: stale; QEMU has had no report from the guest, so its figures are not the guest's;
    - the same timestamp as the last poll: stale; the guest stopped reporting (hung, or its driver gone);
    - otherwise fresh, including the first poll of a domain (nothing to compare with yet).

    A poll interval equal to the stats period can, through jitter, now and then see one timestamp twice;
    callers that mind should treat a single stale poll as a hint and act on two in a row.
    """
    if current_last_update is None:
        return False
    if current_last_update == 0:
        return True
    return previous_last_update is not None and previous_last_update == current_last_update
