"""The per-domain controller: from balloon stats, the size a domain should have and the least it can live with.

used = available - unused. The target leaves `free_share` of the guest's memory free:
    target = used / (1 - free_share), scaled by actual / available (the part of its memory the guest's kernel
    keeps for itself), clamped to floor..maxmem and reached in one step rather than creeping.
A guest with (almost) nothing unused is saturated: its stats only say "at least all I have", so it is offered
its maxmem at once, and the next cycle's stats say what it really uses.
"""

import math
from dataclasses import dataclass, replace

from .plan import mib, percent
from .snapshot import (
    BALLOON_TOLERANCE_KIB,
    BALLOON_TOLERANCE_SHARE,
    MIN_FREE_SHARE,
    PERSISTENT_SATURATION_CYCLES,
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


@dataclass(slots=True)
class Want:
    """The controller's answer for one running domain."""

    domain: DomainSnapshot
    target_kib: int  # the size it should have, if its host has room
    keep_kib: int  # the least it can be given without cutting into its working set or floor
    movable: bool  # the planner may change its size; otherwise it holds `claim_kib`
    claim_kib: int  # what it holds on its host if it is not movable
    code: str
    reason: str
    figures: dict
    watch: BalloonWatch
    retry: bool = False  # a stuck balloon due for another try at `target_kib`

    @property
    def current_kib(self) -> int:
        return self.domain.current_kib


def round_up_mib(kib: float) -> int:
    return int(math.ceil(kib / MIB)) * MIB


def retry_delay_s(retries: int) -> float:
    return min(STUCK_RETRY_MAX_S, STUCK_RETRY_BASE_S * 2**retries)


def watch_balloon(domain: DomainSnapshot, now: float) -> BalloonWatch:
    """Count the cycles in which actual does not approach the target; three in a row make the balloon stuck.

    A balloon that reaches its target clears everything, including a stuck flag and its retries.
    """
    watch = domain.watch
    requested = domain.current_kib
    actual = domain.actual_kib if domain.actual_kib is not None else domain.memory_kib
    gap = abs(actual - requested)
    tolerance = max(BALLOON_TOLERANCE_KIB, int(requested * BALLOON_TOLERANCE_SHARE))
    if gap <= tolerance:
        if watch.behind_cycles == 0 and watch.stuck_since is None and watch.requested_kib == requested:
            return watch  # the common case: nothing to remember, no new object
        return BalloonWatch(requested_kib=requested, last_gap_kib=gap, saturated_cycles=watch.saturated_cycles)
    if requested != watch.requested_kib:
        behind = 0  # a new target: give the balloon its cycles to get there
    elif gap > watch.last_gap_kib - tolerance:
        behind = watch.behind_cycles + 1  # no real progress since the last cycle
    else:
        behind = 0
    stuck_since, retry_at = watch.stuck_since, watch.retry_at
    if stuck_since is None and behind >= STUCK_AFTER_CYCLES:
        stuck_since, retry_at = now, now + retry_delay_s(watch.retries)
    return replace(
        watch, requested_kib=requested, last_gap_kib=gap, behind_cycles=behind, stuck_since=stuck_since, retry_at=retry_at
    )


def _held(domain: DomainSnapshot, watch: BalloonWatch, code: str, reason: str, figures: dict | None = None) -> Want:
    claim = domain.claim_kib
    return Want(domain, claim, claim, False, claim, code, reason, figures or {"claim_kib": claim}, watch)


def want_for(domain: DomainSnapshot, now: float) -> Want:
    """The target of one running domain, with the reason and the figures behind it."""
    watch = watch_balloon(domain, now)
    if domain.busy:
        return _held(domain, watch, BUSY, "a job is queued or running for it; left alone this cycle")
    retry = watch.stuck and watch.retry_at is not None and now >= watch.retry_at
    if watch.stuck and not retry:
        return _held(
            domain, watch, STUCK,
            f"balloon stuck: actual {mib(domain.actual_kib or domain.memory_kib)} has not approached the target "
            f"{mib(domain.current_kib)} for {STUCK_AFTER_CYCLES} cycles (no balloon driver in the guest, or a guest "
            f"that will not give memory back); excluded from plans, next try in {max(0, (watch.retry_at or now) - now):.0f} s",
            {"actual_kib": domain.actual_kib, "requested_kib": domain.current_kib, "retries": watch.retries},
        )
    available, unused = domain.available_kib, domain.unused_kib
    if not available or unused is None:
        return _held(domain, watch, NO_STATS, "no balloon stats from the guest: its size is left as it is")

    current = domain.current_kib
    policy = domain.policy
    used = max(0, available - unused)
    actual = domain.actual_kib or current
    overhead = max(1.0, actual / available)  # guest memory per KiB the guest can use
    saturated = unused < SATURATED_SHARE * available
    saturated_cycles = watch.saturated_cycles + 1 if saturated else 0
    if saturated_cycles != watch.saturated_cycles:
        watch = replace(watch, saturated_cycles=saturated_cycles)
    free_now = unused / available
    figures = {
        "used_kib": used, "available_kib": available, "unused_kib": unused, "actual_kib": actual,
        "current_kib": current, "floor_kib": domain.floor_kib, "maxmem_kib": domain.maxmem_kib,
        "free_share": round(free_now, 4), "target_free_share": policy.free_share,
    }
    floor, maxmem = domain.floor_kib, domain.maxmem_kib
    if saturated:
        target = maxmem
        # A passing spike takes what room there is; one that lasts is a need a migration may serve.
        keep = maxmem if saturated_cycles >= PERSISTENT_SATURATION_CYCLES else min(current, maxmem)
        code = AT_MAXMEM if current >= maxmem else SATURATED
        reason = (
            f"out of memory: {mib(unused)} unused of {mib(available)} ({saturated_cycles} cycle(s) in a row), so "
            f"its demand is unknown; offered its maxmem {mib(maxmem)} at once, next cycle's stats say what it uses"
        )
        if code == AT_MAXMEM:
            reason = (
                f"out of memory at its maxmem {mib(maxmem)}: it needs more than it may have; raise maxmem "
                "(a running domain takes it at its next boot)"
            )
    else:
        wanted = round_up_mib(used * overhead / (1 - policy.free_share))
        target = min(max(wanted, floor), maxmem)
        keep = min(max(round_up_mib(used * overhead / (1 - MIN_FREE_SHARE)), floor), target)
        core = f"uses {mib(used)} of {mib(available)} ({percent(free_now)} free, wants {percent(policy.free_share)})"
        bound = ""
        if wanted > maxmem:
            bound = f", capped at its maxmem {mib(maxmem)}"
        elif wanted < floor:
            bound = f", held at its floor {mib(floor)}"
        if abs(target - current) <= policy.deadband_share * current and not retry:
            if wanted > maxmem and current >= maxmem:
                code = AT_MAXMEM
            elif wanted < floor and current <= floor:
                code = AT_FLOOR
            else:
                code = WITHIN_DEADBAND
            change = "" if target == current else f"; {mib(target)} is within its deadband of {percent(policy.deadband_share)}"
            reason = f"{core}: stays at {mib(current)}{bound}{change}"
            target, keep = current, min(keep, current)
        elif target < current and _cooling_down(domain, now):
            code = COOLDOWN
            reason = (
                f"{core}: could shrink to {mib(target)}, but it grew {now - domain.last_grown_at:.0f} s ago "
                f"(cooldown {policy.shrink_cooldown_s:.0f} s): a spike that came may come back"
            )
            target = current
        else:
            code = GROW if target > current else SHRINK
            reason = f"{core}: {code} to {mib(target)} in one step{bound}"
    figures["target_kib"] = target
    figures["keep_kib"] = keep
    if retry:
        reason = f"balloon stuck since {now - watch.stuck_since:.0f} s ago: retry #{watch.retries + 1} to {mib(target)}"
        figures["retries"] = watch.retries + 1
        watch = replace(watch, retries=watch.retries + 1, retry_at=now + retry_delay_s(watch.retries + 1), behind_cycles=0)
        claim = max(domain.claim_kib, target)
        return Want(domain, target, target, False, claim, RETRY, reason, figures, watch, retry=True)
    return Want(domain, target, keep, True, domain.claim_kib, code, reason, figures, watch)


def _cooling_down(domain: DomainSnapshot, now: float) -> bool:
    grown = domain.last_grown_at
    return grown is not None and now - grown < domain.policy.shrink_cooldown_s
