"""The planner: every domain's target, then per host balloon first, migrate second.

1. The controller gives each running domain a target and a `keep` (working set plus a small margin, or floor).
2. A host whose targets fit its capacity gives every domain its target.
3. A host that cannot takes headroom back, lowest priority first, down to `keep`, never below a floor, and
   gives what is left by priority (highest first, shared in proportion within a priority).
4. If even the `keep`s do not fit, it plans migrations: the fewest bytes moved, to hosts that have room after
   their own ballooning, within the migration budget (at once, per host, and per hour).
5. A host that has lacked room for its domains' recent peaks for SUSTAINED_SQUEEZE_S moves domains away too, to
   a margin below. Peaks are counted at the fleet's planning level: at targets when the fleet can hold them,
   nearer the working sets when it cannot (`_plan_level`).
6. A host in maintenance receives nothing, and moves all its domains away as relief does, within the budget:
   the domains that did not fit when it was emptied leave once another host has room for them.
"""

import bisect
import gc
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field

from .controller import Want, want_for
from .plan import MIGRATE, RESIZE, Decision, Plan, Step
from .snapshot import (
    MODE_OFF,
    NO_COINCIDENCE,
    PEAK_MEMORY_S,
    RELIEF_MARGIN_SHARE,
    SUSTAINED_SQUEEZE_S,
    Coincidence,
    HostSnapshot,
    Snapshot,
)

MIB = 1024

# Decision codes of the planner (stable, stored); the controller's are in controller.py.
HOST_OFF = "host_off"
HOST_OFFLINE = "host_offline"
HOST_SHORT = "host_short"
NO_DESTINATION = "no_destination"
BUDGET_REACHED = "budget_reached"
NOTHING_TO_MOVE = "nothing_to_move"
WAITING_FOR_MIGRATIONS = "waiting_for_migrations"
SUSTAINED_SQUEEZE = "sustained_squeeze"
MAINTENANCE = "maintenance"
SQUEEZED = "squeezed"
STARVED = "starved"
HELD_BY_QUOTA = "held_by_quota"


@dataclass(slots=True)
class Balance:
    """One host's share-out: the planned size of every domain the planner may resize."""

    sizes: dict[int, int]
    fixed_kib: int  # held by domains the planner may not resize, and by migrations coming in
    keep_kib: int  # the sum of the resizable domains' keeps
    shortfall_kib: int  # keep that cannot be found on this host
    room_kib: int  # capacity left after every planned size (0 when squeezed)
    squeezed: bool
    excess_kib: int = 0  # what its planning level (Planner.level) lacks in capacity
    # The planning level at targets: the known targets (a passing spike's maxmem target is a guess: counted at
    # what it has) plus room for the largest recent excursion above target of any one domain: spikes come one at
    # a time, and trends show in the targets themselves.
    planning_kib: int = 0
    # ... and at the least: keeps instead of targets, and each domain's peak at MIN_FREE_SHARE (peak_need_kib).
    least_planning_kib: int = 0
    # What its domains need now, passing spikes (out of memory) at their recent peaks: at targets, and at the least
    # (keeps, peaks at MIN_FREE_SHARE); and how many passing spikes there are.
    now_kib: int = 0
    least_now_kib: int = 0
    spiking_count: int = 0


def balance_host(capacity_kib: int, wants: list[Want], extra_fixed_kib: int = 0, pinned: frozenset[int] = frozenset(),
                 spike_room_kib: int = 0) -> Balance:
    """Share a host's capacity among its domains. `pinned` domains keep what they hold (they are leaving).

    When the targets do not fit: everyone gets the least of keep and what it has (never forced below its working
    set), then up to keep; then saturated guests (out of memory now) up to their target, and they alone may also
    use `spike_room_kib` (the usable memory above the planning capacity, kept for this); then the others'
    headroom, by priority.
    """
    fixed = extra_fixed_kib
    movable: list[Want] = []
    sizes: dict[int, int] = {}
    total_target = total_keep = known = excursion = least = least_excursion = 0
    now = least_now = spiking_count = 0
    for want in wants:
        if want.movable and (not pinned or want.domain.id not in pinned):
            movable.append(want)
            target = want.target_kib
            sizes[want.domain.id] = target
            total_target += target
            total_keep += want.keep_kib
            # The planning levels (see Balance).
            if want.passing_spike:
                spiking_count += 1
                now += want.peak_kib
                least_now += want.peak_need_kib
                target = need = want.current_kib
            else:
                now += target
                need = want.keep_kib
                least_now += need
            known += target
            if want.peak_kib - target > excursion:
                excursion = want.peak_kib - target
            least += need
            peak = want.peak_need_kib
            if peak - need > least_excursion:
                least_excursion = peak - need
        else:
            fixed += want.claim_kib
    budget = capacity_kib - fixed
    planning, least_planning = known + excursion, least + least_excursion
    if total_target <= budget:
        return Balance(sizes, fixed, total_keep, 0, budget - total_target, False, 0, planning, least_planning, now,
                       least_now, spiking_count)

    sizes = {w.domain.id: min(w.keep_kib, w.current_kib) for w in movable}
    left = budget - sum(sizes.values())
    left = _fill(sizes, movable, left, _keep)
    saturated = [w for w in movable if w.saturated]
    if saturated:
        # The spike room goes first, so that the others keep as much of their headroom as they can.
        pool = _fill(sizes, saturated, left + spike_room_kib, _target)  # less spike room if already over
        left = min(left, pool)
        if pool <= 0 and any(sizes[w.domain.id] < w.target_kib for w in saturated):
            left = _lend_to_saturated(sizes, movable, saturated)
    _fill(sizes, movable, left, _target)
    squeezed = any(sizes[w.domain.id] < w.target_kib for w in movable)
    return Balance(sizes, fixed, total_keep, max(0, total_keep - budget), 0, squeezed, 0, planning, least_planning,
                   now, least_now, spiking_count)


def _lend_to_saturated(sizes: dict[int, int], movable: list[Want], saturated: list[Want]) -> int:
    """A guest out of memory on a host with nothing left: the others give headroom down to their brief size."""
    lent = 0
    others = [w for w in movable if not w.saturated]
    for want in others:
        size = sizes[want.domain.id]
        if size > want.brief_kib:
            lent += size - want.brief_kib
            sizes[want.domain.id] = want.brief_kib
    return _fill(sizes, others, _fill(sizes, saturated, lent, _target), _keep)


def _keep(want: Want) -> int:
    return want.keep_kib


def _target(want: Want) -> int:
    return want.target_kib


def _fill(sizes: dict[int, int], wants: list[Want], left: int, goal) -> int:
    """Raise sizes toward goal(want) by priority, highest first; within one priority in proportion to need."""
    if left <= 0:
        return left
    by_priority: dict[int, list[Want]] = defaultdict(list)
    for want in wants:
        if goal(want) > sizes[want.domain.id]:
            by_priority[want.domain.policy.priority].append(want)
    for priority in sorted(by_priority, reverse=True):
        level = by_priority[priority]
        need = sum(goal(w) - sizes[w.domain.id] for w in level)
        if need <= left:
            for want in level:
                sizes[want.domain.id] = goal(want)
            left -= need
            continue
        for want in level:
            share = (goal(want) - sizes[want.domain.id]) * left // need
            sizes[want.domain.id] += share // MIB * MIB
        return 0
    return left


class RoomIndex:
    """Hosts sorted by free room, to find the best fit (the least room that is enough) in O(log n). With `teams`
    (host id -> team id), a search for a team's host passes over the others'."""

    def __init__(self, rooms: dict[int, int], teams: dict[int, int | None] | None = None):
        self.rooms = dict(rooms)
        self.order = sorted((room, host_id) for host_id, room in self.rooms.items())
        self.teams = teams or {}

    def _fits(self, host_id: int, exclude: int | None, team: int | None) -> bool:
        return host_id != exclude and self.teams.get(host_id) == team

    def best_fit(self, need_kib: int, exclude: int | None = None, team: int | None = None) -> int | None:
        """The host with the least room that is enough (packs hosts: for consolidation)."""
        at = bisect.bisect_left(self.order, (need_kib, -1))
        while at < len(self.order):
            host_id = self.order[at][1]
            if self._fits(host_id, exclude, team):
                return host_id
            at += 1
        return None

    def most_room(self, need_kib: int, exclude: int | None = None, team: int | None = None) -> int | None:
        """The host with the most room, if it is enough (spreads load: a host left with room to spare does not
        run short next, as a tightly packed one would)."""
        for room, host_id in reversed(self.order):
            if room < need_kib:
                return None
            if self._fits(host_id, exclude, team):
                return host_id
        return None

    def rooms_of(self, team: int | None) -> list[int]:
        return [room for host_id, room in self.rooms.items() if self.teams.get(host_id) == team]

    def take(self, host_id: int, kib: int) -> None:
        room = self.rooms[host_id]
        self.order.pop(bisect.bisect_left(self.order, (room, host_id)))
        self.rooms[host_id] = room - kib
        bisect.insort(self.order, (room - kib, host_id))

    def add(self, host_id: int, room: int) -> None:
        self.rooms[host_id] = room
        bisect.insort(self.order, (room, host_id))

    def remove(self, host_id: int) -> None:
        room = self.rooms.pop(host_id, None)
        if room is not None:
            self.order.pop(bisect.bisect_left(self.order, (room, host_id)))


@dataclass(frozen=True, slots=True)
class Deficit:
    """What a host must shed: keep (working sets at risk) and, when a squeeze has lasted, target."""

    keep_kib: int
    target_kib: int = 0

    def __bool__(self) -> bool:
        return self.keep_kib > 0 or self.target_kib > 0

    @property
    def largest(self) -> int:
        return max(self.keep_kib, self.target_kib)

    def without(self, want: Want, peak_kib: int) -> "Deficit":
        """What is left once `want` has moved away: its keep from the one, its peak (`peak_kib`, at the planning
        level) from the other."""
        return Deficit(self.keep_kib - want.keep_kib, self.target_kib - peak_kib)


@dataclass(slots=True)
class Move:
    want: Want
    source: HostSnapshot
    destination: HostSnapshot
    reserve_kib: int  # booked on the destination: what the domain will want there
    squeezes_destination: bool


@dataclass(slots=True)
class Budget:
    """Migrations a host may still start this cycle: at once (in, out) and in the hour."""

    incoming: dict[int, int] = field(default_factory=dict)
    outgoing: dict[int, int] = field(default_factory=dict)
    hourly: dict[int, int] = field(default_factory=dict)
    # The part of the hourly budget a host keeps for sending, two thirds: one that spent its hour receiving could
    # not shed load when its own guests grew (a dense fleet's host took six guests at a cold start, then was short
    # by up to 43 GiB for 35 minutes with "budget reached"). Receiving a third rather than half of 12: 6 % fewer
    # violations and migrations on the dense simulated fleet, seeds 1-60 (docs/simulation.md, "Sixth session").
    kept_for_sending: dict[int, int] = field(default_factory=dict)

    @classmethod
    def of(cls, hosts: list[HostSnapshot]) -> "Budget":
        budget = cls()
        for host in hosts:
            budget.incoming[host.id] = host.policy.migrations_in - host.migrations_in_flight_in
            budget.outgoing[host.id] = host.policy.migrations_out - host.migrations_in_flight_out
            budget.hourly[host.id] = host.policy.migrations_per_hour - host.migrations_last_hour
            budget.kept_for_sending[host.id] = host.policy.migrations_per_hour - host.policy.migrations_per_hour // 3
        return budget

    def can_send(self, host_id: int) -> bool:
        return self.outgoing[host_id] > 0 and self.hourly[host_id] > 0

    def can_receive(self, host_id: int) -> bool:
        return self.incoming[host_id] > 0 and self.hourly[host_id] > self.kept_for_sending[host_id]

    def spend(self, source_id: int, destination_id: int) -> None:
        self.outgoing[source_id] -= 1
        self.incoming[destination_id] -= 1
        self.hourly[source_id] -= 1
        self.hourly[destination_id] -= 1


class Planner:
    """One cycle's plan over a snapshot. Build it, call `run()`, read `plan`."""

    def __init__(self, snapshot: Snapshot, extra_booked: dict[int, int] | None = None, squeeze_receivers: bool = False,
                 wants_of: "Planner | None" = None):
        """`extra_booked` books memory on hosts as if it were already taken (a what-if's new domain).
        `wants_of`: a planner over the same snapshot that has balanced; its domains' wants are taken as they are
        (they do not depend on bookings, and are most of a plan's time: a what-if plans once per host it tries).
        `squeeze_receivers`: a domain that must move may go where there is room only once the receiver's domains
        give back their headroom ("shrink multiple hosts to make room for one more": a what-if a person asked
        for). The autoscaler's own cycles do not do that: such moves passed the shortage on to the receivers (on
        the dense simulated fleet, 63 % of the violations after its first 30 minutes were on hosts that had taken
        one in the 30 minutes before)."""
        self.snapshot = snapshot
        self.squeeze_receivers = squeeze_receivers
        self.now = snapshot.now
        self.plan = Plan(snapshot.now, snapshot.policy_version)
        self.managed = [h for h in snapshot.hosts if h.managed]
        self.wants: dict[int, list[Want]] = {h.id: [] for h in self.managed}
        self.balances: dict[int, Balance] = {}
        self.level = 1.0  # where hosts plan between their least (0) and their targets (1): see _plan_level
        self.incoming: dict[int, int] = {h.id: h.incoming_kib for h in snapshot.hosts}
        for host_id, kib in (extra_booked or {}).items():
            self.incoming[host_id] += kib
        self.outgoing: dict[int, int] = defaultdict(int)  # claims leaving by migrations in flight
        self.moves: list[Move] = []
        self.pinned: dict[int, set[int]] = defaultdict(set)
        self.shrinks: list[Step] = []
        self.grows: list[Step] = []
        self.coincidences: dict[int, Coincidence] = {}  # as they go, per managed host
        self.wants_of = wants_of

    def run(self) -> Plan:
        self.balance()
        short = [h for h in self.managed if self.balances[h.id].shortfall_kib > 0 or self._relieving(h) or h.in_maintenance]
        if short:
            self._plan_migrations(short)
        for host in self.managed:
            self._emit_host(host)
        if self.snapshot.quota_left_kib:
            self._hold_to_quotas()
        # Shrinks first, then migrations, then grows: each step finds the room the ones before it made.
        self.plan.steps = self.shrinks + self.plan.steps + self.grows
        for host_id, coincidence in self.coincidences.items():
            self.plan.coincidences[host_id] = coincidence if coincidence.kib > 0 or coincidence.least_kib > 0 else NO_COINCIDENCE
        return self.plan

    def balance(self) -> None:
        """Every domain's want and every managed host's share-out, before any migration."""
        if self.wants_of is None:
            self._want_all()
        else:
            self._take_wants(self.wants_of)
        now = self.now
        for host in self.managed:
            balance = balance_host(
                host.capacity_kib, self.wants[host.id], self.incoming[host.id], spike_room_kib=host.spike_room_kib
            )
            self.balances[host.id] = balance
            coincidence = self.coincidences[host.id] = _coincidence(host.coincidence, balance, now)
            balance.planning_kib += coincidence.kib
            balance.least_planning_kib += coincidence.least_kib
        self.level = _plan_level(self.managed, self.balances)
        for host in self.managed:
            balance = self.balances[host.id]
            planning = self._planning(balance)
            balance.excess_kib = max(0, planning - (host.capacity_kib - balance.fixed_kib))
            lasting = balance.excess_kib > 0
            since = host.squeezed_since if host.squeezed_since is not None else self.now
            self.plan.squeezed_since[host.id] = since if lasting else None

    def _planning(self, balance: Balance) -> int:
        return balance.least_planning_kib + int(self.level * (balance.planning_kib - balance.least_planning_kib))

    def _peak(self, want: Want) -> int:
        """A domain's recent peak at the planning level: what it would take with it, or bring."""
        least = want.peak_need_kib
        return least + int(self.level * max(0, want.peak_kib - least))

    def _relieving(self, host: HostSnapshot) -> bool:
        """Whether a host has been unable to hold its domains' recent peaks for SUSTAINED_SQUEEZE_S."""
        since = self.plan.squeezed_since.get(host.id)
        return since is not None and self.now - since >= SUSTAINED_SQUEEZE_S

    # -- wants ------------------------------------------------------------------------------------------------

    def _want_all(self) -> None:
        wants, watches, now = self.wants, self.plan.watches, self.now
        for domain in self.snapshot.domains:
            if not domain.running:
                continue
            host_wants = wants.get(domain.host_id)
            if host_wants is None:
                continue  # its host is off, offline or unknown: said once per host below
            want = want_for(domain, now)
            watches[domain.id] = want.watch
            host_wants.append(want)
            if domain.migrating_to is not None:
                self.outgoing[domain.host_id] += want.claim_kib
        for host in self.snapshot.hosts:
            if not host.online:
                self.plan.decisions.append(Decision(HOST_OFFLINE, host_id=host.id, figures={"host": host.name}))
            elif host.policy.mode == MODE_OFF:
                self.plan.decisions.append(Decision(HOST_OFF, host_id=host.id, figures={"host": host.name}))

    def _take_wants(self, other: "Planner") -> None:
        """What _want_all would find, from a planner over the same snapshot (wants are never changed)."""
        self.wants = other.wants
        self.outgoing = defaultdict(int, other.outgoing)
        self.plan.watches = dict(other.plan.watches)
        self.plan.decisions = [d for d in other.plan.decisions if d.code in (HOST_OFFLINE, HOST_OFF)]

    # -- migrations -------------------------------------------------------------------------------------------

    def _plan_migrations(self, short: list[HostSnapshot]) -> None:
        budget = Budget.of(self.managed)
        receivers = [h for h in self.managed if not h.in_maintenance and budget.can_receive(h.id)]
        # Room after its own ballooning, leaving room for its own domains' recent peaks.
        # A receiver keeps the relief margin free too: filled to the brim, it would be the next to need relief.
        teams = {h.id: h.team_id for h in receivers}
        at_target = RoomIndex({
            h.id: h.capacity_kib - _relief_margin(h) - self.balances[h.id].fixed_kib - self._planning(self.balances[h.id])
            for h in receivers
        }, teams)
        # ... and in an emergency, if squeezing receivers is allowed, room at its keeps, less what its spikes
        # needed together lately (otherwise an empty index: no host has such room to offer).
        squeezed = RoomIndex({
            h.id: h.capacity_kib - self.balances[h.id].fixed_kib - self.balances[h.id].keep_kib - self.coincidences[h.id].least_kib
            for h in receivers
        } if self.squeeze_receivers else {}, teams)
        changed: set[int] = set()
        for host in sorted(short, key=lambda h: (-self.balances[h.id].shortfall_kib, -self.balances[h.id].excess_kib, h.id)):
            balance = self.balances[host.id]
            # Working sets at risk come first; a lasting squeeze is relieved to a margin below the planning level;
            # a host in maintenance sheds everything, as the budget and the others' room allow.
            if host.in_maintenance:  # those on their way out are not movable: not counted again
                shed = sum(self._peak(w) for w in self.wants[host.id] if w.movable)
            elif self._relieving(host):
                shed = balance.excess_kib + _relief_margin(host) - self.outgoing[host.id]
            else:
                shed = 0
            deficit = Deficit(balance.shortfall_kib - self.outgoing[host.id], shed)
            if host.in_maintenance and deficit:
                self._decide_host(host, MAINTENANCE)
            if not deficit:
                if not host.in_maintenance or self.outgoing[host.id]:  # an emptied host has nothing to say
                    self._decide_host(
                        host, WAITING_FOR_MIGRATIONS, shortfall_kib=max(balance.shortfall_kib, balance.excess_kib),
                        leaving_kib=self.outgoing[host.id],
                    )
                continue
            if deficit.keep_kib <= 0 and not host.in_maintenance:
                self._decide_host(
                    host, SUSTAINED_SQUEEZE, excess_kib=deficit.target_kib,
                    squeezed_for_s=self.now - self.plan.squeezed_since[host.id],
                    together_kib=self.coincidences[host.id].kib,
                )
            at_target.remove(host.id)
            squeezed.remove(host.id)
            moved = self._movers(host, deficit, budget, at_target, squeezed)
            if moved:
                changed.add(host.id)
                changed.update(m.destination.id for m in moved)
        for host_id in changed:
            host = self.snapshot.hosts_by_id[host_id]
            self.balances[host_id] = balance_host(
                host.capacity_kib, self.wants[host_id], self.incoming[host_id], frozenset(self.pinned[host_id]),
                host.spike_room_kib,
            )

    def _movers(self, host: HostSnapshot, deficit: "Deficit", budget: Budget, at_target: RoomIndex, squeezed: RoomIndex) -> list[Move]:
        """Domains to move off a short host: the fewest bytes that cover the deficit, each to the host of its team
        with the most room."""
        # A guest on the move cannot grow for the minutes the move takes: relief (no working set at risk yet)
        # moves only guests that have not spiked lately; an emergency may move any. A host in maintenance must
        # shed them all, whenever they moved last (each still books its peak where it goes), but none in a spike.
        emergency = deficit.keep_kib > 0
        leaving = host.in_maintenance
        candidates = sorted(
            (
                w for w in self.wants[host.id]
                if w.movable and not w.passing_spike
                and (leaving or (not self._recently_moved(w) and (emergency or not _spiky(w))))
            ),
            key=lambda w: (w.claim_kib, w.domain.id),
        )
        moves: list[Move] = []
        if not candidates:
            self._decide_host(host, NOTHING_TO_MOVE, shortfall_kib=deficit.largest)
        while deficit and candidates:
            if not budget.can_send(host.id):
                self._decide_host(
                    host, BUDGET_REACHED, shortfall_kib=deficit.largest, migrations_out=host.policy.migrations_out,
                    migrations_per_hour=host.policy.migrations_per_hour,
                )
                break
            move = self._pick(host, deficit, candidates, at_target, squeezed)
            if move is None:
                self._decide_host(
                    host, NO_DESTINATION, shortfall_kib=deficit.largest,
                    **self._why_no_destination(host, deficit, candidates, budget, at_target, squeezed),
                )
                break
            candidates.remove(move.want)
            budget.spend(host.id, move.destination.id)
            for index in (at_target, squeezed):
                if move.destination.id in index.rooms:
                    index.take(move.destination.id, move.reserve_kib)
                    if not budget.can_receive(move.destination.id):
                        index.remove(move.destination.id)
            self.incoming[move.destination.id] += move.reserve_kib
            self.pinned[host.id].add(move.want.domain.id)
            peak = self._peak(move.want)
            deficit = deficit.without(move.want, peak)
            coincidence = self.coincidences[host.id]
            if (coincidence.kib > 0 or coincidence.least_kib > 0) and _spiky(move.want):
                # A spike that came with others leaves with it.
                want = move.want
                self.coincidences[host.id] = coincidence._replace(
                    kib=max(0, coincidence.kib - (want.peak_kib - want.target_kib)),
                    least_kib=max(0, coincidence.least_kib - (want.peak_need_kib - want.keep_kib)),
                )
            moves.append(move)
            self.moves.append(move)
        return moves

    def _pick(self, host: HostSnapshot, deficit: "Deficit", candidates: list[Want], at_target: RoomIndex, squeezed: RoomIndex) -> Move | None:
        """The cheapest domain that alone covers the deficit (candidates are sorted by bytes); if none does, the
        one that frees the most. Its destination: the host with the most room after its own ballooning, else (if
        squeezing receivers is allowed) the one with the most once its domains give back headroom."""
        covering = [w for w in candidates if not deficit.without(w, self._peak(w))]
        others = sorted((w for w in candidates if deficit.without(w, self._peak(w))), key=lambda w: (-w.keep_kib, -w.peak_kib, w.domain.id))
        # Relief (no working set at risk) only goes where the guest's peak fits beside the host's own peaks:
        # anywhere tighter, the receiver would need relief in its turn.
        emergency = deficit.keep_kib > 0
        for want in covering + others:
            for reserve in (self._peak(want), want.keep_kib) if emergency else (self._peak(want),):
                # It arrives with all it holds: a destination must have room for that too, whatever it wants later.
                if reserve < want.claim_kib:
                    reserve = want.claim_kib
                destination = at_target.most_room(reserve, exclude=host.id, team=host.team_id)
                squeezes = False
                if destination is None and emergency:
                    destination = squeezed.most_room(reserve, exclude=host.id, team=host.team_id)
                    squeezes = True
                if destination is not None:
                    return Move(want, host, self.snapshot.hosts_by_id[destination], reserve, squeezes)
        return None

    def _why_no_destination(self, host: HostSnapshot, deficit: "Deficit", candidates: list[Want], budget: Budget,
                            at_target: RoomIndex, squeezed: RoomIndex) -> dict:
        """What an operator needs to act on "no destination": whether the other hosts lack room (a host to add)
        or migration budget (hosts that have started a third of their hourly migrations keep the rest for sending)."""
        emergency = deficit.keep_kib > 0
        rooms = [*at_target.rooms_of(host.team_id), *(squeezed.rooms_of(host.team_id) if emergency else ())]
        others = [h for h in self.managed if h.id != host.id and not h.in_maintenance and h.team_id == host.team_id]
        return {
            "emergency": emergency,
            # As _pick books it: a domain arrives with all it holds.
            "least_needed_kib": min(max(w.keep_kib if emergency else self._peak(w), w.claim_kib) for w in candidates),
            "most_room_kib": max([0, *rooms]),
            "other_hosts": len(others),
            "other_hosts_over_budget": sum(1 for h in others if not budget.can_receive(h.id)),
        }

    def _recently_moved(self, want: Want) -> bool:
        moved = want.domain.last_migrated_at
        return moved is not None and self.now - moved < want.domain.policy.migrate_cooldown_s

    # -- output ---------------------------------------------------------------------------------------------

    def _decide_host(self, host: HostSnapshot, code: str, **figures) -> None:
        if host.in_maintenance:  # its reasons to move domains are its maintenance (reasons._in_maintenance)
            figures["maintenance"] = True
        self.plan.decisions.append(Decision(code, host_id=host.id, figures={"host": host.name, **figures}))

    def _emit_host(self, host: HostSnapshot) -> None:
        balance = self.balances[host.id]
        moving = {m.want.domain.id: m for m in self.moves if m.source.id == host.id} if self.moves else {}
        if balance.squeezed:
            self._decide_host(
                host, HOST_SHORT, capacity_kib=host.capacity_kib, fixed_kib=balance.fixed_kib,
                keep_kib=balance.keep_kib, shortfall_kib=balance.shortfall_kib,
            )
        steps, decisions, sizes = self.plan.steps, self.plan.decisions, balance.sizes
        shrinks, grows = self.shrinks, self.grows
        host_id = host.id
        for want in self.wants[host_id]:
            domain = want.domain
            if moving and domain.id in moving:
                steps.append(_migration_step(moving[domain.id], balance))
                continue
            if want.retry:
                (self.shrinks if want.target_kib < want.current_kib else self.grows).append(
                    Step(RESIZE, want.code, domain.id, domain.name, host_id, want.current_kib, want.target_kib, want.figures)
                )
                continue
            if not want.movable:
                decisions.append(Decision(want.code, domain.id, host_id, want.figures))
                continue
            size = sizes[domain.id]
            current = want.current_kib
            code, figures = want.code, want.figures
            if size != want.target_kib:
                code = SQUEEZED if size < current else STARVED
                figures = {**figures, "planned_kib": size, "own_code": want.code, "host": host.name,
                           "priority": domain.policy.priority}
            # A partial grow smaller than the deadband is not worth a job; a shrink here makes room, so it is.
            # ... except for a guest out of memory, for which every MiB counts.
            if size == current or (
                current < size < want.target_kib and not want.saturated and size - current <= domain.policy.deadband_share * current
            ):
                decisions.append(Decision(code, domain.id, host_id, figures))
            else:
                (shrinks if size < current else grows).append(Step(RESIZE, code, domain.id, domain.name, host_id, current, size, figures))

    def _hold_to_quotas(self) -> None:
        """A team's quota of running memory binds the autoscaler as it binds an operator
        (services.check_delegation): a grow past what is left of it would be refused, and held back for minutes
        (run.HELD_REFUSALS). What is left goes to guests out of memory first, then by priority. A shrink frees its
        part of the quota when its job ends: the grows it makes room for come in a later cycle."""
        quota_left = dict(self.snapshot.quota_left_kib)
        hosts = self.snapshot.hosts_by_id
        wants = {want.domain.id: want for host_id, host_wants in self.wants.items()
                 if hosts[host_id].team_id in quota_left for want in host_wants}
        bound = [step for step in self.grows if hosts[step.host_id].team_id in quota_left]
        given: dict[int, int] = {}  # step id: the size the quota leaves it
        for step in sorted(bound, key=lambda s: _quota_order(wants[s.domain_id])):
            team_id = hosts[step.host_id].team_id
            left = quota_left[team_id]
            want = wants[step.domain_id]
            size = step.to_kib if step.to_kib - step.from_kib <= left else step.from_kib + left
            worth_a_job = size == step.to_kib or (want.saturated and size - step.from_kib >= MIB) or (
                size - step.from_kib > want.domain.policy.deadband_share * step.from_kib
            )
            if size > step.from_kib and worth_a_job:
                quota_left[team_id] = left - (size - step.from_kib)
            else:
                size = step.from_kib
            if size != step.to_kib:
                given[id(step)] = size
                step.figures = {**step.figures, "held_code": step.code, "given_kib": size, "quota_left_kib": left,
                                "step_kib": step.to_kib}
        if not given:
            return
        kept: list[Step] = []
        for step in self.grows:
            size = given.get(id(step))
            if size is None:
                kept.append(step)
            elif size > step.from_kib:
                kept.append(Step(RESIZE, HELD_BY_QUOTA, step.domain_id, step.domain_name, step.host_id, step.from_kib,
                                 size, step.figures))
            else:
                self.plan.decisions.append(Decision(HELD_BY_QUOTA, step.domain_id, step.host_id, step.figures))
        self.grows = kept


def _quota_order(want: Want) -> tuple:
    return (not want.saturated, -want.domain.policy.priority)


def _plan_level(hosts: list[HostSnapshot], balances: dict[int, Balance]) -> float:
    """Where hosts plan, between their least (keeps, peaks at MIN_FREE_SHARE: 0) and their targets (1): the
    highest level the fleet as a whole holds with two relief margins to spare per host. Planning above what the
    fleet holds only moves a lack of room from host to host: on a dense fleet, relief at the targets migrated
    all the time and its moves themselves caused violations (a guest on the move cannot grow, a budget spent)."""
    room = least = at_targets = 0
    for host in hosts:
        balance = balances[host.id]
        room += host.capacity_kib - balance.fixed_kib - 2 * _relief_margin(host)
        least += balance.least_planning_kib
        at_targets += balance.planning_kib
    if at_targets <= room:
        return 1.0
    if least >= room:
        return 0.0
    return (room - least) / (at_targets - least)


def _coincidence(remembered: Coincidence, balance: Balance, now: float) -> Coincidence:
    """A host's Coincidence after this cycle: planning holds room for one domain's excursion at a time, so when
    several domains are in a passing spike at once, remember by how much more they needed together."""
    if remembered.at is None or now - remembered.at > PEAK_MEMORY_S:
        remembered = NO_COINCIDENCE
    if balance.spiking_count < 2:  # one spike at a time fits in the planning's one excursion
        return remembered
    over = balance.now_kib - balance.planning_kib
    least_over = balance.least_now_kib - balance.least_planning_kib
    if over <= remembered.kib and least_over <= remembered.least_kib:
        return remembered
    return Coincidence(max(remembered.kib, over), max(remembered.least_kib, least_over), now)


def _relief_margin(host: HostSnapshot) -> int:
    """Relief goes this far below the capacity, so that a host relieved is not short again at the next rise of
    a trend (one move of some size, rather than many small ones that use up the hourly budget)."""
    return int(host.capacity_kib * RELIEF_MARGIN_SHARE)


def _spiky(want: Want) -> bool:
    """Whether a guest's recent peak is well above its target (beyond its own free share)."""
    return want.peak_kib > want.target_kib * (1 + want.domain.policy.free_share)


def _migration_step(move: Move, balance: Balance) -> Step:
    want, source, destination = move.want, move.source, move.destination
    domain = want.domain
    figures = {
        **want.figures, "host": source.name, "destination": destination.name, "domain": domain.name,
        "bytes_kib": want.claim_kib, "frees_kib": want.keep_kib, "reserve_kib": move.reserve_kib,
        "shortfall_kib": balance.shortfall_kib, "excess_kib": balance.excess_kib,
        "squeezes_destination": move.squeezes_destination, "maintenance": source.in_maintenance,
    }
    return Step(MIGRATE, MIGRATE, domain.id, domain.name, source.id, want.claim_kib, want.claim_kib, figures, destination.id)


def plan(snapshot: Snapshot) -> Plan:
    """The plan for one cycle. Pure: the same snapshot always gives the same plan."""
    with _collector_paused():
        return Planner(snapshot).run()


@contextmanager
def _collector_paused():
    """A plan makes tens of thousands of short-lived objects (wants, steps, decisions) without reference cycles,
    which reference counting frees. The cyclic collector, triggered every 700 of them, only walks the snapshot
    again and again: a quarter of the time of a plan for 20,000 domains (0.17 s against 0.13 s on one core)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
