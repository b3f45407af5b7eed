"""The database as the engine sees it: `build_snapshot()` reads hosts, running domains, policies, the engine's
memory and the jobs in flight in a fixed number of queries (seven, and four more when a team has a quota), whatever
the size of the fleet.
"""

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from domains.models import Domain, Job
from domains.services import team_memory_in_use
from hosts.models import RUNNING_STATES, Host

from . import snapshot as engine
from .models import Decision, EngineState, HostMode, HostPolicy, TeamPolicy

HOUR_S = 3600.0
# A resize asked for this recently is the target its balloon is watched against (the hypervisor may report
# only what the balloon reached). A stuck domain keeps the target it is stuck on until a new one is asked.
REQUESTED_WINDOW_S = 600.0

DOMAIN_POLICY_FIELDS = ("free_share", "deadband_share", "priority", "shrink_cooldown_s", "migrate_cooldown_s")
HOST_POLICY_FIELDS = ("target_use", "migrations_in", "migrations_out", "migrations_per_hour")


@dataclass
class SnapshotContext:
    """A snapshot and what the run needs beside it."""

    snapshot: engine.Snapshot
    engine_state: EngineState
    modes: dict[int, str]  # the effective mode of every host
    teams: dict[int, int | None]  # the team of every host
    last_codes: dict[int, str] = field(default_factory=dict)  # the last decision kept per domain
    host_codes: dict[int, str] = field(default_factory=dict)  # the last host decisions kept per host
    last_grown: dict[int, float | None] = field(default_factory=dict)
    stored_watches: dict[int, engine.BalloonWatch] = field(default_factory=dict)  # as in DomainState
    stored_squeezed: dict[int, float | None] = field(default_factory=dict)  # as in HostState
    stored_coincidences: dict[int, engine.Coincidence] = field(default_factory=dict)  # as in HostState

    @property
    def policy_version(self) -> str:
        return self.engine_state.policy_version


def epoch(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def effective_mode(host_mode: str | None, team_mode: str | None) -> str:
    """A host's own mode, else its team's; off for a host of no team that says nothing."""
    if host_mode and host_mode != HostMode.INHERIT:
        return host_mode
    return team_mode or engine.MODE_OFF


def host_mode(host: Host) -> str:
    """The mode the autoscaler applies to this host: its own, else its team's (off for a host of no team)."""
    own = HostPolicy.objects.filter(host=host).values_list("mode", flat=True).first()
    team = TeamPolicy.objects.filter(team_id=host.team_id).values_list("mode", flat=True).first() if host.team_id else None
    return effective_mode(own, team)


def build_snapshot(now: float | None = None) -> SnapshotContext:
    now = time.time() if now is None else now
    moment = datetime.fromtimestamp(now, tz=timezone.utc)
    engine_state = EngineState.get()

    # Jobs in flight: busy domains, migrations (in, out, booked on their destination), boots booked.
    busy: set[int] = set()
    migrating_to: dict[int, int] = {}
    incoming: dict[int, int] = {}
    flying_in: dict[int, int] = {}
    flying_out: dict[int, int] = {}
    for domain_id, kind, host_id, target_id, params, domain_state, domain_host_id, domain_kib in Job.objects.filter(
        state__in=Job.UNFINISHED
    ).values_list("domain_id", "kind", "host_id", "target_host_id", "params", "domain__state", "domain__host_id", "domain__memory_kib"):
        if domain_id is not None:
            busy.add(domain_id)
        if kind == Job.Kind.MIGRATE and target_id is not None:
            migrating_to[domain_id] = target_id
            incoming[target_id] = incoming.get(target_id, 0) + int(params.get("memory_kib", 0))
            flying_in[target_id] = flying_in.get(target_id, 0) + 1
            flying_out[host_id] = flying_out.get(host_id, 0) + 1
        elif kind in Job.BOOTING and target_id is not None:
            boot_kib = int(params.get("memory_kib", 0))
            if kind == Job.Kind.RESTART and domain_state in RUNNING_STATES and domain_host_id == target_id:
                boot_kib = max(0, boot_kib - domain_kib)  # it counts at its size now until it stops (booked_kib)
            incoming[target_id] = incoming.get(target_id, 0) + boot_kib

    # A step sent or approved that waits for shrinks will be sent: planned again, the domain would get two jobs.
    busy.update(Decision.objects.filter(state=Decision.State.WAITING, domain__isnull=False).values_list("domain_id", flat=True))

    # The last hour's migrations: the per-hour budget, and each domain's last move (its cooldown). A move someone
    # stopped while it ran counts as one: it used the link, and the engine must not start it again at once.
    started_last_hour: dict[int, int] = {}
    last_migrated: dict[int, float] = {}
    for domain_id, host_id, target_id, state, created, finished in Job.objects.filter(
        kind=Job.Kind.MIGRATE, created__gte=moment - timedelta(seconds=HOUR_S)
    ).exclude(state=Job.State.CANCELLED, started__isnull=True).values_list(
        "domain_id", "host_id", "target_host_id", "state", "created", "finished"
    ):
        for host in (host_id, target_id):
            if host is not None:
                started_last_hour[host] = started_last_hour.get(host, 0) + 1
        if state in (Job.State.SUCCEEDED, Job.State.CANCELLED) and domain_id is not None:
            last_migrated[domain_id] = max(last_migrated.get(domain_id, 0.0), epoch(finished or created))

    # Recent resizes: the targets the balloons are watched against.
    requested: dict[int, tuple[int, datetime]] = {}  # domain: (target, when its job finished)
    for domain_id, params, finished in (
        Job.objects.filter(kind=Job.Kind.RESIZE, state=Job.State.SUCCEEDED, finished__gte=moment - timedelta(seconds=REQUESTED_WINDOW_S))
        .order_by("finished", "id")
        .values_list("domain_id", "params", "finished")
    ):
        if domain_id is not None and "target_kib" in params:
            requested[domain_id] = (int(params["target_kib"]), finished)  # the latest wins

    hosts: list[engine.HostSnapshot] = []
    modes: dict[int, str] = {}
    teams: dict[int, int | None] = {}
    host_codes: dict[int, str] = {}
    stored_squeezed: dict[int, float | None] = {}
    stored_coincidences: dict[int, engine.Coincidence] = {}
    limits: dict[int, int | None] = {}  # a host's team's operator limit
    quotas: dict[int, int] = {}  # a team's quota of running memory
    for row in Host.objects.values(
        "id", "name", "status", "total_kib", "capacity_kib", "reserved_kib", "team_id", "team__autoscale_policy__mode",
        "team__operator_max_kib", "team__quota_kib",
        "autoscale_policy__mode", *(f"autoscale_policy__{name}" for name in HOST_POLICY_FIELDS),
        "autoscale_state__squeezed_since", "autoscale_state__last_codes", "autoscale_state__coincident_kib",
        "autoscale_state__coincident_least_kib", "autoscale_state__coincident_at", "maintenance",
    ):
        host_id = row["id"]
        mode = effective_mode(row["autoscale_policy__mode"], row["team__autoscale_policy__mode"])
        modes[host_id], teams[host_id] = mode, row["team_id"]
        limits[host_id] = row["team__operator_max_kib"]
        if row["team__quota_kib"] is not None:
            quotas[row["team_id"]] = row["team__quota_kib"]
        values = {name: row[f"autoscale_policy__{name}"] for name in HOST_POLICY_FIELDS}
        policy = engine.HostPolicy(mode=mode, **{k: v for k, v in values.items() if v is not None})
        usable = max(0, (row["capacity_kib"] or row["total_kib"]) - row["reserved_kib"])
        squeezed_since = row["autoscale_state__squeezed_since"]
        stored_squeezed[host_id] = squeezed_since
        coincidence = stored_coincidences[host_id] = engine.Coincidence(
            row["autoscale_state__coincident_kib"] or 0, row["autoscale_state__coincident_least_kib"] or 0,
            row["autoscale_state__coincident_at"],
        )
        host_codes[host_id] = row["autoscale_state__last_codes"] or ""
        hosts.append(engine.HostSnapshot(
            host_id, row["name"], usable, row["status"] == Host.Status.ONLINE, policy, incoming.get(host_id, 0),
            flying_in.get(host_id, 0), flying_out.get(host_id, 0), started_last_hour.get(host_id, 0), squeezed_since,
            coincidence, row["maintenance"], row["team_id"],
        ))

    domains: list[engine.DomainSnapshot] = []
    last_codes: dict[int, str] = {}
    last_grown: dict[int, float | None] = {}
    stored_watches: dict[int, engine.BalloonWatch] = {}
    policies: dict[tuple, engine.DomainPolicy] = {}  # one object per distinct policy, not one per domain
    watch_columns = [f"autoscale_state__{name}" for name in engine.BalloonWatch._fields]
    for row in Domain.objects.filter(state__in=RUNNING_STATES).values_list(
        "id", "name", "host_id", "memory_kib", "maxmem_kib", "floor_kib", "actual_kib", "available_kib", "unused_kib",
        "stats_stale", *(f"autoscale_policy__{name}" for name in DOMAIN_POLICY_FIELDS), *watch_columns,
        "autoscale_state__last_grown_at", "autoscale_state__last_code", "booted_at",
    ):
        (domain_id, name, host_id, memory, maxmem, floor, actual, available, unused, stale, *rest) = row
        policy_values = tuple(rest[: len(DOMAIN_POLICY_FIELDS)])
        watch_values = rest[len(DOMAIN_POLICY_FIELDS): len(DOMAIN_POLICY_FIELDS) + len(watch_columns)]
        grown_at, last_code, booted_at = rest[-3:]
        policy = policies.get(policy_values)
        if policy is None:
            given = {k: v for k, v in zip(DOMAIN_POLICY_FIELDS, policy_values) if v is not None}
            policy = policies[policy_values] = engine.DomainPolicy(**given)
        watch = engine.NEW_WATCH
        if watch_values[0] is not None:  # a DomainState row exists
            watch = stored_watches[domain_id] = engine.BalloonWatch(*watch_values)
        asked, asked_at = requested.get(domain_id, (None, None))
        if booted_at is not None:
            # A boot gives the balloon the config's memory: what was asked before it, or stuck on, is past.
            if asked_at is not None and asked_at < booted_at:
                asked = None
            if watch.stuck_since is not None and watch.stuck_since < epoch(booted_at):
                watch = watch._replace(requested_kib=0, last_gap_kib=0, behind_cycles=0, stuck_since=None, retries=0, retry_at=None)
        if asked is None and watch.stuck_since is not None:
            asked = watch.requested_kib  # stuck on it: keep watching it until a new target is asked
        if stale:
            available = unused = None  # stats from an earlier poll say nothing about now
        domains.append(engine.DomainSnapshot(
            domain_id, name, host_id, True, memory, maxmem, floor, actual, available, unused, asked,
            domain_id in busy, migrating_to.get(domain_id), policy, watch, grown_at, last_migrated.get(domain_id),
            limits.get(host_id),
        ))
        last_codes[domain_id] = last_code or ""
        last_grown[domain_id] = grown_at

    # Four more queries, only when some team has a quota: booked memory counted as the services count it.
    in_use = team_memory_in_use(list(quotas)) if quotas else {}
    quota_left = {team_id: max(0, quota - in_use[team_id]) for team_id, quota in quotas.items()}
    snapshot = engine.Snapshot(hosts, domains, now, engine_state.policy_version, quota_left)
    return SnapshotContext(
        snapshot, engine_state, modes, teams, last_codes, host_codes, last_grown, stored_watches, stored_squeezed,
        stored_coincidences,
    )
