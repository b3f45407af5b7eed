"""What the engine sees: hosts and domains with their stats, policies and memory of past cycles. All in KiB.

A snapshot is built from the database by `state.build_snapshot()`, or by hand in tests and benchmarks.
Times are seconds on one clock (the snapshot's `now`); the engine never reads a clock itself.
"""

from dataclasses import dataclass, field
from typing import NamedTuple

ENGINE_VERSION = "1"

MODE_OFF = "off"
MODE_RECOMMEND = "recommend"
MODE_AUTOMATIC = "automatic"
MODES = (MODE_OFF, MODE_RECOMMEND, MODE_AUTOMATIC)

# A guest with less than this share of its memory unused is out of memory: its real demand is unknown (the
# stats only say "at least all it has"), so the controller offers it its maxmem rather than creeping up.
SATURATED_SHARE = 0.02
# ... and so is a small guest with less than this free, whatever its share: a Linux guest keeps a few MiB for its
# watermarks and starts reclaiming and OOM-killing well before 2 % of 128 MiB is left (the lab's guests, whose
# workload stops growing at 8 MiB available, showed it: they never looked saturated and never grew).
SATURATED_MIN_KIB = 16 * 1024
# What a target, and a squeeze, always leave free: above SATURATED_MIN_KIB with a margin for the stats' jitter,
# or a small guest sized to its 20 % free share would look saturated at that size, be offered its maxmem, be
# shrunk again, and so on (a 128 MiB lab guest did exactly that).
MIN_FREE_KIB = 24 * 1024
# When a host runs short, headroom is taken from guests down to this free share, never further: below it a
# guest would look saturated on the next poll and ask for everything back.
MIN_FREE_SHARE = 0.06
# ... except while a neighbour is out of memory (saturated) and the host has nothing else to give it: then the
# others give headroom down to this share, above SATURATED_SHARE, for as long as the neighbour lacks room.
BRIEF_FREE_SHARE = 0.03
# A guest out of memory for this long is not a passing spike: its growth becomes a need that a migration may
# serve. Shorter shortages are left to ballooning: a migration takes minutes (a 4 GiB guest at VDSM's 52 MiB/s
# takes 80 s) and would end after the spike it was for.
PERSISTENT_SATURATION_S = 120.0
# Taking headroom back is a stopgap: a host that has not been able to give its domains their targets for this
# long (longer than a spike, shorter than a daily trend) moves domains away until it can.
SUSTAINED_SQUEEZE_S = 300.0
# Relief leaves this share of a host's capacity free beside its domains' needs at their peaks, and only hosts
# with that much to spare receive: hysteresis, against moving again at every rise of a trend.
RELIEF_MARGIN_SHARE = 0.05
# A domain's highest known target is remembered this long: a spike that came may come back, and a host should
# have room for the largest recent excursion of its domains (targets themselves follow the present, so nothing
# is held back from the guests for it). Hours, not minutes: a host that forgot its trends' tops while they were
# low took guests in, and shed them again at the next rise (the simulation's dense fleet, 40 seeds: 11 % fewer
# violations and 5 % fewer migrations with 4 h than with 30 min).
PEAK_MEMORY_S = 4 * 3600.0
# A balloon that has not approached its target for this many cycles is stuck.
STUCK_AFTER_CYCLES = 3
STUCK_RETRY_BASE_S = 60.0
STUCK_RETRY_MAX_S = 3600.0
# actual within this share of the target (or BALLOON_TOLERANCE_KIB, whichever is larger) has reached it.
BALLOON_TOLERANCE_SHARE = 0.02
BALLOON_TOLERANCE_KIB = 16 * 1024


@dataclass(frozen=True, slots=True)
class DomainPolicy:
    free_share: float = 0.20  # share of the guest's memory to leave free (oVirt MOM keeps 20 % too)
    deadband_share: float = 0.05  # a change smaller than this share of the current size is not worth a job
    priority: int = 0  # when a host runs short, lower priorities give up their headroom first
    shrink_cooldown_s: float = 60.0  # no shrink this soon after a grow: a spike that came may come back
    migrate_cooldown_s: float = 3600.0  # a domain moved this recently is not moved again


@dataclass(frozen=True, slots=True)
class HostPolicy:
    mode: str = MODE_OFF
    target_use: float = 0.95  # share of usable memory planned as targets; the rest only for guests out of memory
    migrations_in: int = 2  # at once, as VDSM
    migrations_out: int = 2
    # Started from or to this host in the last hour. 12 rather than 6: once emergencies no longer squeezed their
    # receivers, the budget was what the dense simulated fleet lacked (violations over 40 seeds 2,262 -> 1,391;
    # docs/simulation.md, "Fifth session").
    migrations_per_hour: int = 12


class BalloonWatch(NamedTuple):
    """What the engine remembers of one domain between cycles; the plan returns the next one.
    (A NamedTuple: immutable, and six times quicker to make than a frozen dataclass, once per domain per cycle.)"""

    requested_kib: int = 0  # the target last watched; a new target restarts the count
    last_gap_kib: int = 0
    behind_cycles: int = 0  # cycles in a row in which actual did not approach the target
    stuck_since: float | None = None
    retries: int = 0
    retry_at: float | None = None
    saturated_since: float | None = None  # out of free memory since
    peak_kib: int = 0  # the highest target known from its stats (not a saturated guess) ...
    peak_at: float | None = None  # ... last reached then

    @property
    def stuck(self) -> bool:
        return self.stuck_since is not None


NEW_WATCH = BalloonWatch()


class Coincidence(NamedTuple):
    """Spikes that came together on a host: the most by which its domains' needs at one instant (those in a
    passing spike at their recent peaks) exceeded its planning (targets plus ONE domain's excursion) in the last
    PEAK_MEMORY_S. Added to the host's planning: spikes that came together once tend to come together again."""

    kib: int = 0  # at targets
    least_kib: int = 0  # at the least (keeps, peaks at MIN_FREE_SHARE)
    at: float | None = None  # last raised


NO_COINCIDENCE = Coincidence()


# Snapshots are values: nothing changes them once built. They are not frozen dataclasses only because those are
# four times slower to build, and a snapshot of 20,000 domains is built on every poll.
@dataclass(slots=True)
class DomainSnapshot:
    id: int
    name: str
    host_id: int
    running: bool
    memory_kib: int  # the current size as the hypervisor reports it
    maxmem_kib: int
    floor_kib: int
    # Balloon stats; None where the driver gave none.
    actual_kib: int | None = None
    available_kib: int | None = None
    unused_kib: int | None = None
    # The balloon target last asked for (by a job), which the hypervisor may not report; None: memory_kib.
    requested_kib: int | None = None
    busy: bool = False  # a job is queued or running for it: leave it alone this cycle
    migrating_to: int | None = None  # the destination host of a migration in flight
    policy: DomainPolicy = DomainPolicy()
    watch: BalloonWatch = NEW_WATCH
    last_grown_at: float | None = None
    last_migrated_at: float | None = None
    # Its team's limit for one domain that an operator may give, which binds the autoscaler (an operator too).
    limit_kib: int | None = None

    @property
    def current_kib(self) -> int:
        """The size the domain is meant to have now: the last target asked for, else what is reported."""
        return self.requested_kib if self.requested_kib is not None else self.memory_kib

    @property
    def claim_kib(self) -> int:
        """What the domain holds on its host whatever the plan: the larger of its target and what it has."""
        return max(self.current_kib, self.memory_kib, self.actual_kib or 0)


@dataclass(slots=True)
class HostSnapshot:
    id: int
    name: str
    usable_kib: int  # capacity minus the host's reserve
    online: bool = True
    policy: HostPolicy = HostPolicy()
    incoming_kib: int = 0  # booked by migrations on their way in
    migrations_in_flight_in: int = 0
    migrations_in_flight_out: int = 0
    migrations_last_hour: int = 0
    squeezed_since: float | None = None  # unable to give its domains their targets since (the plan says next)
    coincidence: Coincidence = NO_COINCIDENCE  # the plan says the next one
    in_maintenance: bool = False  # being emptied: no domain may come here
    # A domain belongs to its host's team: the engine moves it only between hosts of one team (None: no team).
    team_id: int | None = None

    @property
    def capacity_kib(self) -> int:
        """What the engine may hand out as targets on this host."""
        return int(self.usable_kib * self.policy.target_use)

    @property
    def spike_room_kib(self) -> int:
        """Usable memory above the planning capacity: only guests that are out of memory may take it."""
        return self.usable_kib - self.capacity_kib

    @property
    def managed(self) -> bool:
        return self.online and self.policy.mode != MODE_OFF


@dataclass(slots=True)
class Snapshot:
    hosts: list[HostSnapshot]
    domains: list[DomainSnapshot]
    now: float = 0.0
    policy_version: str = ENGINE_VERSION
    # Per team with a quota of running memory: how much of it is left (what the services would let it book).
    quota_left_kib: dict[int, int] = field(default_factory=dict)
    hosts_by_id: dict[int, HostSnapshot] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.hosts_by_id = {host.id: host for host in self.hosts}
