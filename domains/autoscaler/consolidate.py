"""Consolidation: the fewest hosts that hold every domain at its target, moving as few bytes as that allows.

The busiest hosts stay (their domains need not move); the domains of the others are packed into the room left,
largest first, each into the host it fits most tightly (best fit decreasing). Only when a domain fits nowhere
is another host kept. Hosts left empty could be switched off. A recommendation: the migration budget applies
when its steps are carried out, not here.
"""

from dataclasses import dataclass, field

from .plan import MIGRATE, Step
from .planner import Planner, RoomIndex
from .snapshot import HostSnapshot, Snapshot


@dataclass(slots=True)
class Consolidation:
    hosts_used: int
    lower_bound: int  # the fewest hosts whose capacities could hold the sum of all demands
    demand_kib: int
    placement: dict[int, int]  # domain id -> host id
    steps: list[Step] = field(default_factory=list)
    moved_kib: int = 0
    unplaced: list[int] = field(default_factory=list)  # domains too large for any host's capacity


def lower_bound(capacities: list[int], demand_kib: int) -> int:
    """The fewest hosts, largest first, whose capacities add up to the demand (all of them if none do).
    With hosts of one size: ceil(demand / size)."""
    total, count = 0, 0
    for capacity in sorted(capacities, reverse=True):
        if total >= demand_kib:
            break
        total += capacity
        count += 1
    return count


def consolidate(snapshot: Snapshot) -> Consolidation:
    planner = Planner(snapshot)
    planner.balance()
    hosts = planner.managed
    # A domain's demand is its target; one the planner may not resize holds what it has.
    demands: dict[int, int] = {}
    home: dict[int, int] = {}
    names: dict[int, str] = {}
    load: dict[int, int] = {h.id: h.incoming_kib for h in hosts}
    bytes_of: dict[int, int] = {}
    pinned: set[int] = set()  # busy, stuck, without stats: they stay where they are
    for host in hosts:
        for want in planner.wants[host.id]:
            domain = want.domain
            demands[domain.id] = want.target_kib if want.movable else want.claim_kib
            home[domain.id] = host.id
            names[domain.id] = domain.name
            bytes_of[domain.id] = domain.claim_kib
            load[host.id] += demands[domain.id]
            if not want.movable:
                pinned.add(domain.id)
    total = sum(load.values())
    bound = lower_bound([h.capacity_kib for h in hosts], total)

    # Keep the busiest hosts, as many as the bound says, and every host holding a domain that may not move.
    order = sorted(hosts, key=lambda h: (-load[h.id], -h.capacity_kib, h.id))
    kept: list[HostSnapshot] = list(order[:bound])
    kept_ids = {h.id for h in kept}
    for domain_id in pinned:
        if home[domain_id] not in kept_ids:
            host = planner.snapshot.hosts_by_id[home[domain_id]]
            kept.append(host)
            kept_ids.add(host.id)
    spare = [h for h in order if h.id not in kept_ids]

    placement: dict[int, int] = {}
    pool: list[int] = []
    by_host: dict[int, list[int]] = {h.id: [] for h in hosts}
    for domain_id, host_id in home.items():
        by_host[host_id].append(domain_id)
    rooms: dict[int, int] = {}
    for host in kept:
        room = host.capacity_kib - host.incoming_kib
        # Largest first stay, so that an overfull host sends away its small domains (fewest bytes).
        for domain_id in sorted(by_host[host.id], key=lambda d: (d not in pinned, -demands[d], d)):
            if domain_id in pinned or demands[domain_id] <= room:
                placement[domain_id] = host.id
                room -= demands[domain_id]
            else:
                pool.append(domain_id)
        rooms[host.id] = room
    for host in spare:
        pool.extend(by_host[host.id])

    index = RoomIndex(rooms)
    unplaced: list[int] = []
    spare_by_id = {h.id: h for h in spare}
    for domain_id in sorted(pool, key=lambda d: (-demands[d], d)):
        need = demands[domain_id]
        host_id = index.best_fit(need)
        if host_id is None:
            # Open another host: the domain's own if it is spare, so that at least this one need not move;
            # else the busiest spare one.
            host = spare_by_id.pop(home[domain_id], None) or _busiest(spare_by_id)
            if host is None or host.capacity_kib - host.incoming_kib < need:
                unplaced.append(domain_id)
                continue
            kept.append(host)
            index.add(host.id, host.capacity_kib - host.incoming_kib)
            host_id = host.id
        placement[domain_id] = host_id
        index.take(host_id, need)

    steps: list[Step] = []
    moved = 0
    hosts_by_id = planner.snapshot.hosts_by_id
    for domain_id, host_id in placement.items():
        if host_id == home[domain_id]:
            continue
        moved += bytes_of[domain_id]
        source, destination = hosts_by_id[home[domain_id]], hosts_by_id[host_id]
        steps.append(
            Step(
                MIGRATE, "consolidate", domain_id, names[domain_id], source.id, bytes_of[domain_id], bytes_of[domain_id],
                {"domain": names[domain_id], "host": source.name, "destination": destination.name,
                 "bytes_kib": bytes_of[domain_id], "demand_kib": demands[domain_id]},
                destination.id,
            )
        )
    used = len({host_id for host_id in placement.values()} | {h.id for h in kept if h.incoming_kib})
    return Consolidation(used, bound, total, placement, steps, moved, unplaced)


def _busiest(spare: dict[int, HostSnapshot]) -> HostSnapshot | None:
    """The first of the spare hosts, which are in order of load, busiest first."""
    return spare.pop(next(iter(spare))) if spare else None
