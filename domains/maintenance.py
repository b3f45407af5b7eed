"""Maintenance: an admin empties a host. From then on no domain may come to it (migrations, creations, the
autoscaler's moves and what-ifs all refuse it), and each of its running domains migrates live to the host of its
team with the most room for it, largest first, each an ordinary job of the admin's. Domains that fit nowhere stay and are
named with the reason; shut-off domains stay (only a running domain migrates live). Where the autoscaler is on,
it moves those that stayed once another host has room for them (receivers ballooned to their targets first),
within its migration budget (domains.autoscaler.planner). Starting it again on a host already in maintenance
moves what is still there (a domain that stayed, once room has been made) without touching the rest. Ending it
opens the host again; domains come back only as people or the autoscaler move them.

The plan (`evacuation`) is a pure function, so the host page can show it before anyone starts.
"""

from dataclasses import dataclass, field

from django.db import transaction

from balloonweb.access.actors import Actor
from balloonweb.audit.log import record
from balloonweb.audit.models import AuditEntry
from hosts.models import RUNNING_STATES, Host

from .models import Domain, Job
from .services import (
    Conflict,
    Destination,
    ServiceError,
    announce_host,
    audit_refusals,
    check_permission,
    destinations,
    locked_host,
    mib,
    request_migrate,
)


@dataclass
class Evacuation:
    moves: list[tuple[Domain, Host]] = field(default_factory=list)
    staying: list[tuple[Domain, str]] = field(default_factory=list)  # a domain not moved, and why
    moving: list[tuple[Domain, str]] = field(default_factory=list)  # already on its way: (domain, destination)
    jobs: list[Job] = field(default_factory=list)  # once started: the migrations queued
    already: bool = False  # the host was in maintenance before: this moved what was still there

    def queued(self) -> str:
        """"3 migrations queued (jobs 4, 5, 6)", or "no domain to move"."""
        if not self.jobs:
            return "no domain to move"
        ids = ", ".join(str(job.pk) for job in self.jobs)
        if len(self.jobs) == 1:
            return f"1 migration queued (job {ids})"
        return f"{len(self.jobs)} migrations queued (jobs {ids})"

    def by_destination(self) -> list[tuple[Host, int, int]]:
        """(host, domains, KiB) that the moves bring to each destination, by name."""
        counts: dict[int, list] = {}
        for domain, host in self.moves:
            entry = counts.setdefault(host.pk, [host, 0, 0])
            entry[1] += 1
            entry[2] += domain.memory_kib
        return sorted((tuple(entry) for entry in counts.values()), key=lambda entry: entry[0].name)


def evacuation(domains: list[Domain], places: list[Destination]) -> Evacuation:
    """Where each running domain goes: largest first, to the open host with the most room left (the tightest
    fit would be the first to run short when its own domains grow)."""
    plan = Evacuation()
    free = {d.host.pk: d.free_kib for d in places if not d.closed}
    hosts = {d.host.pk: d.host for d in places}
    for domain in sorted(domains, key=lambda d: (-d.memory_kib, d.name)):
        if domain.state not in RUNNING_STATES:
            plan.staying.append((domain, f"{domain.get_state_display()}: only a running domain migrates live"))
            continue
        best = max(free, key=lambda pk: (free[pk], -pk), default=None)
        if best is None or free[best] < domain.memory_kib:
            most = f"the most is {mib(free[best])} on {hosts[best].name}" if best is not None else "no host is open to it"
            plan.staying.append((domain, f"no host has room for its {mib(domain.memory_kib)}: {most}"))
            continue
        free[best] -= domain.memory_kib
        plan.moves.append((domain, hosts[best]))
    return plan


def preview(actor: Actor, host: Host) -> Evacuation:
    """What starting maintenance would do now (nothing changes). Domains already migrating are left to their
    moves."""
    present = list(Domain.objects.present().filter(host=host))
    on_their_way = dict(
        Job.objects.filter(kind=Job.Kind.MIGRATE, state__in=Job.UNFINISHED, domain__in=present)
        .values_list("domain_id", "target_host__name")
    )
    # Only to the team's other hosts: a domain belongs to its host's team, and emptying a host must not give its
    # domains away (an admin of two teams, or a superuser, may migrate to any of them by hand).
    own_team = [d for d in destinations(actor, host) if d.host.team_id == host.team_id]
    plan = evacuation([d for d in present if d.pk not in on_their_way], own_team)
    plan.moving = [(d, on_their_way[d.pk]) for d in present if d.pk in on_their_way]
    return plan


@audit_refusals("host.maintenance")
def start(actor: Actor, host: Host) -> Evacuation:
    """Put the host in maintenance (host admins), then queue the migrations that empty it, as the actor's jobs.
    A migration refused now (the fleet moved since the plan) leaves its domain staying, with the refusal. On a
    host already in maintenance, only the migrations of what is still there (each is audited as usual)."""
    with transaction.atomic():
        host = locked_host(host.pk)
        check_permission(actor, "manage_host", host)
        already = host.maintenance
        if not already:
            host.maintenance = True
            host.save(update_fields=["maintenance"])
            record(actor, "host.maintenance", host, result=AuditEntry.Result.SUCCEEDED, before={"maintenance": False},
                   after={"maintenance": True})
            announce_host(host)
    plan = preview(actor, host)
    plan.already = already
    for domain, target in plan.moves:
        try:
            plan.jobs.append(request_migrate(actor, domain, target))
        except ServiceError as exc:
            plan.staying.append((domain, exc.message))
    return plan


@audit_refusals("host.maintenance")
def end(actor: Actor, host: Host) -> Host:
    with transaction.atomic():
        host = locked_host(host.pk)
        check_permission(actor, "manage_host", host)
        if not host.maintenance:
            raise Conflict(f"{host.name} is not in maintenance", "not_in_maintenance")
        host.maintenance = False
        host.save(update_fields=["maintenance"])
        record(actor, "host.maintenance", host, result=AuditEntry.Result.SUCCEEDED, before={"maintenance": True},
               after={"maintenance": False})
        announce_host(host)  # an empty host's page hears of nothing else: no poll changes anything there
    return host
