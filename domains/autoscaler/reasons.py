"""The words for every decision, rendered from its code and figures.

The engine records what it decided as a stable code plus the figures behind it (JSON-able: KiB, shares,
seconds, names); the sentence is made only when someone reads it. That keeps a 20,000-domain plan fast, and a
stored decision can be shown again in the same words.
"""

from hosts.units import format_mib

from .snapshot import BRIEF_FREE_SHARE, STUCK_AFTER_CYCLES


mib = format_mib


def percent(share: float) -> str:
    return f"{share * 100:.0f} %"


def explain(code: str, figures: dict) -> str:
    render = _RENDER.get(code)
    return render(figures) if render else code.replace("_", " ")


def _uses(f: dict) -> str:
    return (
        f"uses {mib(f['used_kib'])} of {mib(f['available_kib'])} ({percent(f['free_share'])} free, "
        f"wants {percent(f['target_free_share'])})"
    )


def _bound(f: dict) -> str:
    bound = f.get("bound")
    if bound == "maxmem":
        return f", capped at {_ceiling(f)}"
    if bound == "floor":
        return f", held at its floor {mib(f['floor_kib'])}"
    return ""


def _resize(f: dict, verb: str) -> str:
    return f"{_uses(f)}: {verb} to {mib(f['target_kib'])} in one step{_bound(f)}"


def _stays(f: dict) -> str:
    text = f"{_uses(f)}: stays at {mib(f['current_kib'])}{_bound(f)}"
    if f.get("wanted_kib") not in (None, f["current_kib"]):
        text += f"; {mib(f['wanted_kib'])} is within its deadband of {percent(f['deadband_share'])}"
    return text


def _saturated(f: dict) -> str:
    since = f"for {f['saturated_for_s']:.0f} s" if f["saturated_for_s"] >= 1 else "since this cycle"
    return (
        f"out of memory: {mib(f['unused_kib'])} unused of {mib(f['available_kib'])} ({since}), so its demand is "
        f"unknown; offered {_ceiling(f)} at once, and the next cycle's stats say what it uses"
    )


def _ceiling(f: dict) -> str:
    if f.get("team_limit_kib"):
        return f"{mib(f['maxmem_kib'])} (its team's operator limit for the autoscaler: {mib(f['team_limit_kib'])})"
    return f"its maxmem {mib(f['maxmem_kib'])}"


def _at_maxmem(f: dict) -> str:
    if f.get("saturated") and f.get("team_limit_kib"):
        return f"out of memory at {_ceiling(f)}: a team admin can give it more, or raise the limit"
    if f.get("saturated"):
        return (
            f"out of memory at its maxmem {mib(f['maxmem_kib'])}: it needs more than it may have; raise maxmem "
            "(a running domain takes it at its next boot)"
        )
    return _stays(f)


def _cooldown(f: dict) -> str:
    return (
        f"{_uses(f)}: could shrink to {mib(f['wanted_kib'])}, but it grew {f['grown_ago_s']:.0f} s ago (cooldown "
        f"{f['shrink_cooldown_s']:.0f} s): a spike that came may come back"
    )


def _stuck(f: dict) -> str:
    return (
        f"balloon stuck: actual {mib(f['actual_kib'])} has not approached the target {mib(f['requested_kib'])} for "
        f"{STUCK_AFTER_CYCLES} cycles (no balloon driver in the guest, or a guest that will not give memory back); "
        f"excluded from plans, next try in {f['next_try_s']:.0f} s"
    )


def _retry(f: dict) -> str:
    return f"balloon stuck for {f['stuck_for_s']:.0f} s: retry #{f['retries']} to {mib(f['target_kib'])}"


def _squeezed(f: dict) -> str:
    if f['planned_kib'] < f['keep_kib']:
        limit = (
            f"lent below its margin ({mib(f['keep_kib'])}) to a guest out of memory on the same host, for as long "
            f"as that one lacks room, never below its working set with {BRIEF_FREE_SHARE * 100:.0f} % free "
            f"({mib(f['brief_kib'])})"
        )
    else:
        limit = f"never below working set and margin or floor ({mib(f['keep_kib'])})"
    return (
        f"{f['host']} is short, so {mib(f['planned_kib'])} rather than {mib(f['target_kib'])}: headroom taken back "
        f"by priority (this one: {f['priority']}), {limit}. On its own: {explain(f['own_code'], f)}"
    )


def _starved(f: dict) -> str:
    return (
        f"{f['host']} is short, so it gets {mib(f['planned_kib'])} of the {mib(f['target_kib'])} it wants. "
        f"On its own: {explain(f['own_code'], f)}"
    )


def _held_by_quota(f: dict) -> str:
    if f["given_kib"] > f["current_kib"]:
        given = f"{mib(f['given_kib'])} rather than {mib(f['step_kib'])}"
    else:
        given = f"stays at {mib(f['current_kib'])} rather than growing to {mib(f['step_kib'])}"
    return (
        f"{given}: its team's quota of running memory has {mib(f['quota_left_kib'])} left for the autoscaler's "
        f"grows (guests out of memory first, then by priority; a shrink gives its part back when it ends). "
        f"Without the quota: {explain(f['held_code'], f)}"
    )


def _migrate(f: dict) -> str:
    how = "after taking back some of its headroom" if f.get("squeezes_destination") else "after its own ballooning"
    if f.get("shortfall_kib"):
        why = f"{f['host']} is short by {mib(f['shortfall_kib'])} even with every domain at its working set or floor"
    elif f.get("maintenance"):
        why = f"{f['host']} is in maintenance"
    else:
        why = (
            f"{f['host']} has long lacked room for its domains' recent peaks ({mib(f.get('excess_kib'))} "
            "too little)"
        )
    which = "" if f.get("maintenance") and not f.get("shortfall_kib") else ", the fewest bytes that help"
    return (
        f"{why}: move {f['domain']} ({mib(f['bytes_kib'])}{which}) to {f['destination']}, "
        f"the host with the most room for its {mib(f['reserve_kib'])} {how}"
    )


def _consolidate(f: dict) -> str:
    return (
        f"consolidation: move {f['domain']} ({mib(f['bytes_kib'])}) from {f['host']} to {f['destination']}, so that "
        f"{f['host']} can be emptied"
    )


def _place(f: dict) -> str:
    return f"start {f['domain']} with {mib(f['memory_kib'])} (maxmem {mib(f['maxmem_kib'])}) on {f['host']}"


def _host_short(f: dict) -> str:
    return (
        f"{f['host']}'s targets do not fit its {mib(f['capacity_kib'])}: headroom taken back by priority, lowest "
        "first, down to working sets and floors"
    )


def _no_destination(f: dict) -> str:
    short = f"{f['host']} is short by {mib(f['shortfall_kib'])} after taking headroom down to working sets and floors"
    if "least_needed_kib" not in f:  # a decision kept before these figures were recorded
        return f"{short}, and no host with migration budget has room for any of its domains"
    if not f["emergency"]:
        short = _in_maintenance(f) or f"{f['host']} lacks {mib(f['shortfall_kib'])} for its domains' recent peaks"
    if not f["other_hosts"]:
        return f"{short}, and there is no other host in automatic or recommend mode to move a domain to"
    over_budget = f["other_hosts_over_budget"]
    budget = (
        f"{over_budget} of the other {f['other_hosts']} hosts may not receive now (migrations at once, or the two "
        "thirds of their hourly budget kept for their own sends)" if over_budget else f"all {f['other_hosts']} other hosts may receive"
    )
    return (
        f"{short}, and no host can take any of its domains: the smallest needs {mib(f['least_needed_kib'])} there, "
        f"the most room on a host that may receive is {mib(f['most_room_kib'])}; {budget}"
    )


def _in_maintenance(f: dict) -> str:
    """Why a host in maintenance moves domains, when no working set is at risk there ("" otherwise)."""
    return f"{f['host']} is in maintenance" if f.get("maintenance") else ""


def _short(f: dict, still: str = "") -> str:
    """Why a host moves domains: its maintenance, or what it is short by."""
    return _in_maintenance(f) or f"{f['host']} is {still}short by {mib(f['shortfall_kib'])}"


def _budget_reached(f: dict) -> str:
    return (
        f"{_short(f, 'still ')}, but its migration budget is spent "
        f"({f['migrations_out']} out at once, {f['migrations_per_hour']} an hour)"
    )


def _sustained_squeeze(f: dict) -> str:
    together = f.get("together_kib") or 0  # absent from decisions kept before it was recorded
    counting = f", counting {mib(together)} for spikes that came together lately" if together else ""
    return (
        f"{f['host']} has lacked room for its domains' recent peaks for {f['squeezed_for_s']:.0f} s "
        f"({mib(f['excess_kib'])} too little{counting}): taking headroom back is a stopgap, so domains move away"
    )


def _maintenance(f: dict) -> str:
    # No counts: a host's notes are kept again only when their codes change, so figures here would grow stale
    # (the host page says live how many domains are still there).
    return f"{f['host']} is in maintenance: its domains move away as the migration budget and the other hosts' room allow"


def _nothing_to_move(f: dict) -> str:
    return (
        f"{_short(f)}, but none of its domains can move now: each is busy, "
        "stuck, in a passing spike, or was moved (or had a move stopped) within the hour"
    )


def _waiting(f: dict) -> str:
    return (
        f"{f['host']} is short by {mib(f['shortfall_kib'])}; migrations in flight will free {mib(f['leaving_kib'])}: "
        "waiting for them"
    )


_RENDER = {
    "grow": lambda f: _resize(f, "grow"),
    "shrink": lambda f: _resize(f, "shrink"),
    "within_deadband": _stays,
    "at_floor": _stays,
    "at_maxmem": _at_maxmem,
    "saturated": _saturated,
    "cooldown": _cooldown,
    "busy": lambda f: "a job is queued or running for it; left alone this cycle",
    "settling": lambda f: (
        f"its balloon is on its way to {mib(f['requested_kib'])} (at {mib(f['actual_kib'])} now): sized again "
        "once it gets there"
    ),
    "no_stats": lambda f: "no balloon stats from the guest: its size is left as it is",
    "stuck": _stuck,
    "retry": _retry,
    "squeezed": _squeezed,
    "starved": _starved,
    "held_by_quota": _held_by_quota,
    "migrate": _migrate,
    "consolidate": _consolidate,
    "place": _place,
    "host_short": _host_short,
    "no_destination": _no_destination,
    "budget_reached": _budget_reached,
    "waiting_for_migrations": _waiting,
    "nothing_to_move": _nothing_to_move,
    "sustained_squeeze": _sustained_squeeze,
    "maintenance": _maintenance,
    "host_off": lambda f: f"autoscaling is off for {f['host']}",
    "host_offline": lambda f: f"{f['host']} is offline: nothing planned for it",
}
