""""Make room for one more": which host can take a new domain of N MiB, and the plan that would make it so.

Each managed host is graded by what it takes to find N there:
  free        it has N unclaimed now: nothing changes;
  targets     once its domains are at their targets (shrinking those with more than they need);
  squeezed    once its domains give back headroom down to their working sets and floors, by priority;
  migrations  once some of its domains move to other hosts (as the planner would: fewest bytes, within budget),
              hosts that keep their own domains' headroom if they can, else hosts that give theirs back.
The cheapest grade wins; within one, the fewest bytes shrunk or moved, then the tightest fit (migration plans
that squeeze no receiver are all tried before any that does).
"""

from dataclasses import dataclass, field

from .plan import MIGRATE, PLACE, Plan, Step
from .reasons import mib
from .planner import Planner, balance_host
from .snapshot import Snapshot

FREE = "free"
TARGETS = "targets"
SQUEEZED = "squeezed"
MIGRATIONS = "migrations"
NO_ROOM = "no_room"
GRADES = (FREE, TARGETS, SQUEEZED, MIGRATIONS)
# Hosts tried with migrations (a full plan each); the ones closest to fitting are tried first.
MIGRATION_TRIALS = 5


@dataclass(frozen=True, slots=True)
class NewDomain:
    name: str
    memory_kib: int
    maxmem_kib: int


@dataclass(slots=True)
class Candidate:
    host_id: int
    host_name: str
    grade: str
    free_kib: int  # unclaimed now
    room_at_targets_kib: int
    room_squeezed_kib: int
    cost_kib: int = 0  # bytes shrunk or migrated to make the room


@dataclass(slots=True)
class WhatIf:
    new: NewDomain
    host_id: int | None
    grade: str
    reason: str
    plan: Plan
    candidates: list[Candidate] = field(default_factory=list)


def make_room(snapshot: Snapshot, new: NewDomain) -> WhatIf:
    """The what-if. Pure: nothing is applied; in automatic mode the caller may apply `plan.steps` in order."""
    if new.memory_kib > new.maxmem_kib:
        return _none(snapshot, new, f"{mib(new.memory_kib)} is above its maxmem {mib(new.maxmem_kib)}")
    base = Planner(snapshot)
    base.balance()
    need = new.memory_kib
    candidates: list[Candidate] = []
    out_of_quota: dict[str, int] = {}  # host: what is left of its team's quota
    for host in base.managed:
        if host.in_maintenance:
            continue  # being emptied: it takes no domain
        quota_left = snapshot.quota_left_kib.get(host.team_id)
        if quota_left is not None and quota_left < need:
            out_of_quota[host.name] = quota_left  # its team could not start the domain (services.check_delegation)
            continue
        balance = base.balances[host.id]
        wants = [w for w in base.wants[host.id] if w.movable]
        free = host.capacity_kib - balance.fixed_kib - sum(w.current_kib for w in wants)
        at_targets = host.capacity_kib - balance.fixed_kib - sum(w.target_kib for w in wants)
        squeezed = host.capacity_kib - balance.fixed_kib - balance.keep_kib
        candidate = Candidate(host.id, host.name, MIGRATIONS, free, at_targets, squeezed)
        if at_targets >= need:
            # Its domains get their targets and the new one still fits; only shrinks toward targets cost.
            candidate.grade = FREE if free >= need else TARGETS
            if candidate.grade == TARGETS:
                candidate.cost_kib = sum(w.current_kib - w.target_kib for w in wants if w.target_kib < w.current_kib)
        elif squeezed >= need:
            candidate.grade = SQUEEZED
            sizes = balance_host(host.capacity_kib, base.wants[host.id], balance.fixed_kib + need).sizes
            candidate.cost_kib = sum(max(0, w.current_kib - sizes[w.domain.id]) for w in wants)
        candidates.append(candidate)
    if not candidates:
        if out_of_quota:
            hosts = ", ".join(f"{name} ({mib(left)} left)" for name, left in sorted(out_of_quota.items()))
            return _none(snapshot, new, f"no host can take {mib(need)} within its team's quota of running memory: {hosts}")
        return _none(snapshot, new, "no host is online with autoscaling on")

    chosen: Candidate | None = None
    plan: Plan | None = None
    for grade in GRADES:
        graded = [c for c in candidates if c.grade == grade]
        if grade == MIGRATIONS:
            # A full plan each: try the hosts closest to fitting, keep the one that moves the fewest bytes.
            # Receivers that keep their own headroom first: squeezing them is the last resort, as it leaves them
            # short at their guests' next rise.
            graded.sort(key=lambda c: (-c.room_squeezed_kib, c.host_id))
            for squeeze_receivers in (False, True):
                for candidate in graded[:MIGRATION_TRIALS]:
                    trial = _plan_with(snapshot, candidate.host_id, new, squeeze_receivers=squeeze_receivers, base=base)
                    if trial is None:
                        if squeeze_receivers:
                            candidate.grade = NO_ROOM  # not even once receivers give back headroom
                        continue
                    candidate.cost_kib = _cost(trial)
                    if chosen is None or (candidate.cost_kib, candidate.host_id) < (chosen.cost_kib, chosen.host_id):
                        chosen, plan = candidate, trial
                if chosen is not None:
                    break
        elif graded:
            cheapest = min(graded, key=lambda c: (c.cost_kib, c.room_squeezed_kib, c.host_id))
            plan = _plan_with(snapshot, cheapest.host_id, new, place_only=grade == FREE, base=base)
            # A host that does not fit after all is not chosen, so that the next grade starts afresh.
            chosen = cheapest if plan is not None else None
        if chosen is not None:
            break
    if chosen is None or plan is None:
        largest = max(base.managed, key=lambda h: (h.capacity_kib, -h.id))
        if need > largest.capacity_kib:  # no plan could help: say so, rather than blame the floors or the budget
            return _none(snapshot, new, f"no host can take {mib(need)}: the largest, {largest.name}, plans for at most "
                         f"{mib(largest.capacity_kib)} of guests", candidates)
        return _none(snapshot, new, f"no host can take {mib(need)}, even with others shrunk to their floors and "
                     "working sets and with migrations within budget", candidates)
    reason = {
        FREE: f"{chosen.host_name} has {mib(chosen.free_kib)} free now, and its domains keep their targets",
        TARGETS: f"{chosen.host_name} has room ({mib(chosen.room_at_targets_kib)}) once its domains are at their targets",
        SQUEEZED: f"{chosen.host_name} has room ({mib(chosen.room_squeezed_kib)}) once its domains give back headroom "
        "down to their working sets and floors",
        MIGRATIONS: f"{chosen.host_name} has room once {len([s for s in plan.steps if s.kind == MIGRATE])} of its "
        f"domain(s) move away ({mib(chosen.cost_kib)} moved or shrunk)",
    }[chosen.grade]
    squeezed = _squeezed_receivers(plan)
    if squeezed:
        reason += (f"; {', '.join(squeezed)} can take them only by taking back their own domains' headroom, and may "
                   "then be short when those grow")
    return WhatIf(new, chosen.host_id, chosen.grade, reason, plan, candidates)


def _plan_with(snapshot: Snapshot, host_id: int, new: NewDomain, place_only: bool = False,
               squeeze_receivers: bool = True, base: Planner | None = None) -> Plan | None:
    """The plan with the new domain booked on `host_id`, cut to the steps that make room there; None if the
    host would still be short. `squeeze_receivers`, and `base` (whose wants are reused): see Planner."""
    steps: list[Step] = []
    decisions = []
    if not place_only:
        planner = Planner(snapshot, extra_booked={host_id: new.memory_kib}, squeeze_receivers=squeeze_receivers,
                          wants_of=base)
        full = planner.run()
        movers = [s for s in full.steps if s.kind == MIGRATE and s.host_id == host_id]
        leaving = sum(s.figures.get("frees_kib", 0) for s in movers)
        if planner.balances[host_id].shortfall_kib > leaving:
            return None
        involved = {host_id} | {s.to_host_id for s in movers}
        # Steps on the chosen host and on the hosts that take its domains; only shrinks and moves make room.
        steps = [s for s in full.steps if s.host_id in involved and (s.kind == MIGRATE or s.is_shrink)]
        decisions = [d for d in full.decisions if d.host_id in involved and d.domain_id is None]
    steps.append(
        Step(PLACE, PLACE, None, new.name, host_id, 0, new.memory_kib, {
            "domain": new.name, "memory_kib": new.memory_kib, "maxmem_kib": new.maxmem_kib,
            "host": snapshot.hosts_by_id[host_id].name,
        })
    )
    return Plan(snapshot.now, snapshot.policy_version, steps, decisions)


def _squeezed_receivers(plan: Plan) -> list[str]:
    """The hosts that take a plan's migrations only by taking back their own domains' headroom."""
    return sorted({s.figures["destination"] for s in plan.steps if s.kind == MIGRATE and s.figures.get("squeezes_destination")})


def _cost(plan: Plan) -> int:
    return sum(
        s.figures.get("bytes_kib", 0) if s.kind == MIGRATE else s.from_kib - s.to_kib
        for s in plan.steps
        if s.kind == MIGRATE or s.is_shrink
    )


def _none(snapshot: Snapshot, new: NewDomain, reason: str, candidates: list[Candidate] | None = None) -> WhatIf:
    return WhatIf(new, None, NO_ROOM, reason, Plan(snapshot.now, snapshot.policy_version), candidates or [])
