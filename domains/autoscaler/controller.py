"""The per-domain controller: from balloon stats, the size a domain should have and the least it can live with.

used = available - unused. The target leaves `free_share` of the guest's memory free:
    target = used / (1 - free_share), scaled by actual / available (the part of its memory the guest's kernel
    keeps for itself), clamped to floor..maxmem and reached in one step rather than creeping.
A guest with (almost) nothing unused is saturated: its stats only say "at least all I have", so it is offered
its maxmem at once, and the next cycle's stats say what it really uses.

This runs for every domain on every cycle: it builds figures, not sentences (see reasons.py).
"""

from dataclasses import dataclass

from .snapshot import (
    BALLOON_TOLERANCE_KIB,
    BALLOON_TOLERANCE_SHARE,
    BRIEF_FREE_SHARE,
    MIN_FREE_KIB,
    MIN_FREE_SHARE,
    PEAK_MEMORY_S,
    PERSISTENT_SATURATION_S,
    SATURATED_MIN_KIB,
    SATURATED_SHARE,
    STUCK_AFTER_CYCLES,
    STUCK_RETRY_BASE_S,
    STUCK_RETRY_MAX_S,
    BalloonWatch,
    DomainSnapshot,
)

MIB = 1024

# Why a domain's target is what it is; stored with decisions, so these strings are stable.
GROW = "grow"
SHRINK = "shrink"
SATURATED = "saturated"
WITHIN_DEADBAND = "within_deadband"
AT_FLOOR = "at_floor"
AT_MAXMEM = "at_maxmem"
COOLDOWN = "cooldown"
BUSY = "busy"
NO_STATS = "no_stats"
STUCK = "stuck"
RETRY = "retry"
SETTLING = "settling"


@dataclass(slots=True)
class Want:
    """The controller's answer for one running domain."""

    domain: DomainSnapshot
    current_kib: int  # the size it is meant to have now
    target_kib: int  # the size it should have, if its host has room
    keep_kib: int  # the least it can be given without cutting into its working set or floor
    movable: bool  # the planner may change its size; otherwise it holds `claim_kib`
    claim_kib: int  # what it holds on its host whatever the plan
    code: str
    figures: dict
    watch: BalloonWatch
    retry: bool = False  # a stuck balloon due for another try at `target_kib`
    saturated: bool = False  # out of free memory: its target is a guess (maxmem), its need is urgent
    passing_spike: bool = False  # saturated for less than PERSISTENT_SATURATION_S
    peak_kib: int = 0  # the larger of its known target and its peak of the last PEAK_MEMORY_S: room to plan for
    peak_need_kib: int = 0  # the least it needs at that peak (MIN_FREE_SHARE free instead of its own)
    brief_kib: int = 0  # what it may be held at while a neighbour is out of memory (BRIEF_FREE_SHARE free)


def retry_delay_s(retries: int) -> float:
    # The exponent is capped: a balloon retried hourly for weeks would overflow a float.
    return min(STUCK_RETRY_MAX_S, STUCK_RETRY_BASE_S * 2 ** min(retries, 32))


def balloon_gap(domain: DomainSnapshot, requested: int) -> tuple[int, int]:
    """How far the balloon's actual is from the target `requested`, and the gap within which it has reached it."""
    actual = domain.actual_kib if domain.actual_kib is not None else domain.memory_kib
    gap = actual - requested if actual > requested else requested - actual
    tolerance = int(requested * BALLOON_TOLERANCE_SHARE)
    return gap, tolerance if tolerance > BALLOON_TOLERANCE_KIB else BALLOON_TOLERANCE_KIB


def watch_balloon(watch: BalloonWatch, requested: int, gap: int, tolerance: int, now: float) -> BalloonWatch:
    """Count the cycles in which actual does not approach the target `requested` (`gap` and `tolerance` from
    balloon_gap); STUCK_AFTER_CYCLES in a row (after the cycle that first saw the target) make the balloon stuck.
    Reaching the target clears everything, a stuck flag and its retries included."""
    if gap <= tolerance:
        if watch.behind_cycles == 0 and watch.stuck_since is None and watch.requested_kib == requested:
            return watch  # the common case: nothing new to remember
        return BalloonWatch(requested, gap, 0, None, 0, None, watch.saturated_since, watch.peak_kib, watch.peak_at)
    if requested != watch.requested_kib:
        behind = 0  # a new target: give the balloon a cycle to get there
    elif gap > watch.last_gap_kib - tolerance:
        behind = watch.behind_cycles + 1  # no real progress since the last cycle
    else:
        behind = 0
    stuck_since, retry_at = watch.stuck_since, watch.retry_at
    if stuck_since is None and behind >= STUCK_AFTER_CYCLES:
        stuck_since, retry_at = now, now + retry_delay_s(watch.retries)
    return watch._replace(requested_kib=requested, last_gap_kib=gap, behind_cycles=behind, stuck_since=stuck_since,
                          retry_at=retry_at)


def _held(domain: DomainSnapshot, current: int, watch: BalloonWatch, code: str, figures: dict | None = None) -> Want:
    claim = max(current, domain.memory_kib, domain.actual_kib or 0)
    return Want(domain, current, claim, claim, False, claim, code, figures or {"claim_kib": claim}, watch, peak_kib=claim,
                peak_need_kib=claim)


def want_for(domain: DomainSnapshot, now: float) -> Want:
    """The target of one running domain, with the code and figures that explain it."""
    current = domain.requested_kib if domain.requested_kib is not None else domain.memory_kib
    gap, tolerance = balloon_gap(domain, current)
    watch = watch_balloon(domain.watch, current, gap, tolerance, now)
    if domain.busy:
        return _held(domain, current, watch, BUSY)
    stuck = watch.stuck_since is not None
    retry = stuck and now >= watch.retry_at
    if stuck and not retry:
        return _held(domain, current, watch, STUCK, {
            "actual_kib": domain.actual_kib, "requested_kib": current, "retries": watch.retries,
            "next_try_s": watch.retry_at - now,
        })
    available, unused = domain.available_kib, domain.unused_kib
    if not available or unused is None:
        return _held(domain, current, watch, NO_STATS)

    policy = domain.policy
    floor, maxmem = domain.floor_kib, domain.maxmem_kib
    limited = domain.limit_kib is not None and domain.limit_kib < maxmem
    if limited:
        maxmem = domain.limit_kib if domain.limit_kib > current else current  # given more by an admin: kept
    used = available - unused if available > unused else 0
    actual = domain.actual_kib or current
    overhead = actual / available if actual > available else 1.0  # guest memory per KiB the guest can use
    saturated = unused < SATURATED_SHARE * available or unused < SATURATED_MIN_KIB
    persistent = False
    saturated_since = (watch.saturated_since if watch.saturated_since is not None else now) if saturated else None
    if saturated_since != watch.saturated_since:
        watch = BalloonWatch(watch.requested_kib, watch.last_gap_kib, watch.behind_cycles, watch.stuck_since,
                             watch.retries, watch.retry_at, saturated_since, watch.peak_kib, watch.peak_at)
    if gap > tolerance and not saturated and not retry:
        # A balloon still on its way to the last target: the balloon's actual and the guest's own statistics are
        # read at different moments, so sizing it now acts on figures about to change (a real guest deflating
        # from 512 MiB to 139 MiB read 265 MiB actual against 84 MiB MemTotal, and was "grown" for it). A guest
        # out of memory is served all the same; one that never gets there is stuck, above.
        return _held(domain, current, watch, SETTLING, {"actual_kib": actual, "requested_kib": current})
    figures = {
        "used_kib": used, "available_kib": available, "unused_kib": unused, "actual_kib": actual,
        "current_kib": current, "floor_kib": floor, "maxmem_kib": maxmem,
        "free_share": unused / available, "target_free_share": policy.free_share,
    }
    if limited:
        figures["team_limit_kib"] = domain.limit_kib
    if saturated:
        target = maxmem
        # A passing spike takes what room there is; one that lasts is a need that a migration may serve.
        persistent = now - saturated_since >= PERSISTENT_SATURATION_S
        keep = maxmem if persistent else min(current, maxmem)
        code = AT_MAXMEM if current >= maxmem else SATURATED
        # Its maxmem target is a guess, but that it needs all it has (with its free share) is known: a spike that
        # never gets room would otherwise never show in its peak, and its host would never plan for it.
        at_least = -(-int(current / (1 - policy.free_share)) // MIB) * MIB
        if at_least > maxmem:
            at_least = maxmem
        live_peak = watch.peak_kib if watch.peak_at is not None and now - watch.peak_at <= PEAK_MEMORY_S else 0
        if at_least > live_peak:
            watch = BalloonWatch(watch.requested_kib, watch.last_gap_kib, watch.behind_cycles, watch.stuck_since,
                                 watch.retries, watch.retry_at, watch.saturated_since, at_least, now)
        figures["saturated"] = True
        figures["saturated_for_s"] = now - saturated_since
    else:
        guest_used = used * overhead
        # Never less than what it uses, MIN_FREE_KIB, and its kernel's part (actual - available). That part is a
        # fixed amount in a real guest (MemTotal drops by what the balloon takes), so the share-scaled target
        # undershoots when a real guest shrinks a lot: an idle 512 MiB lab guest would be sized under its working
        # set, or to a few MiB free where it looks saturated and is offered everything back.
        least = used + MIN_FREE_KIB + actual - available
        wanted = guest_used / (1 - policy.free_share)
        wanted = -(-int(wanted if wanted > least else least) // MIB) * MIB  # rounded up to a MiB
        target = maxmem if wanted > maxmem else floor if wanted < floor else wanted
        keep = guest_used / (1 - MIN_FREE_SHARE)
        keep = -(-int(keep if keep > least else least) // MIB) * MIB
        keep = target if keep > target else floor if keep < floor else keep
        brief = guest_used / (1 - BRIEF_FREE_SHARE)
        brief = -(-int(brief if brief > least else least) // MIB) * MIB
        brief = keep if brief > keep else floor if brief < floor else brief
        # A new peak, or an expired one, is taken now; a peak merely held again is refreshed only half-way to its
        # expiry (a new watch for every domain on every cycle would cost more than the rest of the plan).
        peak_at = watch.peak_at
        if peak_at is None or target > watch.peak_kib or now - peak_at > PEAK_MEMORY_S or (
            target == watch.peak_kib and now - peak_at > PEAK_MEMORY_S / 2
        ):
            watch = BalloonWatch(watch.requested_kib, watch.last_gap_kib, watch.behind_cycles, watch.stuck_since,
                                 watch.retries, watch.retry_at, watch.saturated_since, target, now)
        if wanted > maxmem:
            figures["bound"] = "maxmem"
        elif wanted < floor:
            figures["bound"] = "floor"
        change = target - current if target > current else current - target
        if change <= policy.deadband_share * current and not retry:
            if wanted > maxmem and current >= maxmem:
                code = AT_MAXMEM
            elif wanted < floor and current <= floor:
                code = AT_FLOOR
            else:
                code = WITHIN_DEADBAND
            figures["deadband_share"] = policy.deadband_share
            figures["wanted_kib"] = target
            target = current
            if keep > current:
                keep = current
            if brief > keep:
                brief = keep
        elif target < current and domain.last_grown_at is not None and now - domain.last_grown_at < policy.shrink_cooldown_s:
            code = COOLDOWN
            figures["wanted_kib"] = target
            figures["grown_ago_s"] = now - domain.last_grown_at
            figures["shrink_cooldown_s"] = policy.shrink_cooldown_s
            target = current
        else:
            code = GROW if target > current else SHRINK
    figures["target_kib"] = target
    figures["keep_kib"] = keep
    if not saturated:
        figures["brief_kib"] = brief
    claim = current if current > domain.memory_kib else domain.memory_kib
    if domain.actual_kib is not None and domain.actual_kib > claim:
        claim = domain.actual_kib
    if retry:
        retries = watch.retries + 1
        figures["retries"] = retries
        figures["stuck_for_s"] = now - watch.stuck_since
        watch = watch._replace(behind_cycles=0, retries=retries, retry_at=now + retry_delay_s(retries))
        # Not counted on: it holds the larger of what it has and what it is asked for.
        return Want(domain, current, target, target, False, max(claim, target), RETRY, figures, watch, retry=True,
                    peak_kib=max(claim, target), peak_need_kib=max(claim, target))
    # A passing spike: urgent, but not a reason to move anything (and a guest on the move cannot grow).
    passing_spike = saturated and not persistent
    known = current if passing_spike else target
    peak = watch.peak_kib if watch.peak_at is not None and now - watch.peak_at <= PEAK_MEMORY_S else 0
    if known > peak:
        peak = known
    # The least it needs at that peak: the peak at MIN_FREE_SHARE free instead of its own (for the planner's
    # planning level); plain arithmetic, as this runs for every domain on every cycle.
    peak_need = int(peak * (1 - policy.free_share) / (1 - MIN_FREE_SHARE))
    if peak_need > maxmem:
        peak_need = maxmem
    if peak_need < keep:
        peak_need = keep
    return Want(domain, current, target, keep, True, claim, code, figures, watch, False, saturated, passing_spike,
                peak, peak_need, keep if saturated else brief)
