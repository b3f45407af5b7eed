"""The rules for every change, in one place. Pages, the API, the `xm` command and the autoscaler call these.

Each request function checks permission, memory bounds and host room inside one transaction that holds the
host's row lock, writes the Job row and the audit entry, and enqueues the job when the transaction commits.
"""

import logging
from dataclasses import dataclass

from celery import current_app
from django.db import transaction
from django.db.models import Q

from balloonweb.access import rules
from balloonweb.access.actors import Actor
from balloonweb.access.models import Team
from balloonweb.audit.log import record, record_in_teams
from balloonweb.audit.models import AuditEntry
from balloonweb.ids import as_id
from balloonweb.live.publish import publish
from hosts.drivers import DomainConfig
from hosts.models import RUNNING_STATES, Host
from hosts.units import BadSize, format_bound as bound, format_mib as mib, parse_memory_kib

from .jobs import announce, worker_time_limit_s
from .clock import db_now
from .models import Domain, Job
from .xenconfig import ConfigError, parse_xen_config

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """A refusal a person can act on; `code` is stable (the API returns it), `status` is the HTTP status."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class BadRequest(ServiceError):
    status = 400


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class Unavailable(ServiceError):
    status = 503
    code = "host_unreachable"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


# -- the rules ------------------------------------------------------------------------------------------------


def parse_size(size: str | int) -> int:
    try:
        return parse_memory_kib(size)
    except BadSize as exc:
        raise BadRequest(str(exc), "bad_size") from exc


def check_permission(actor: Actor, action: str, obj) -> None:
    """The permission rule as a service error; refusals of people are audited outside the failed transaction."""
    try:
        rules.require(actor, action, obj)
    except rules.NotFound as exc:
        raise NotFound(str(exc)) from exc
    except rules.Forbidden as exc:
        raise Forbidden(str(exc)) from exc


def check_memory_bounds(domain: Domain, target_kib: int) -> None:
    """floor <= target <= maxmem, and a live change only on a running domain."""
    if domain.state == Domain.State.GONE:
        raise Conflict(f"{domain.name} is no longer on {domain.host}: it vanished from the host", "domain_gone")
    if not domain.is_running:
        raise BadRequest(
            f"{domain.name} is {domain.get_state_display()}: a live resize needs a running domain; start it first",
            "domain_not_running",
        )
    if target_kib > domain.maxmem_kib and target_kib <= (domain.config_maxmem_kib or 0):
        raise BadRequest(
            f"{bound(target_kib)} is above the maxmem of {domain.name} ({bound(domain.maxmem_kib)}) until it boots again: "
            f"its config has {bound(domain.config_maxmem_kib)}, which a restart gives it (xm reboot {domain.name})",
            "above_maxmem",
        )
    if target_kib > domain.maxmem_kib:
        raise BadRequest(
            f"{bound(target_kib)} is above the maxmem of {domain.name} ({bound(domain.maxmem_kib)}); "
            f"raise maxmem first (xm mem-max {domain.name} {target_kib // 1024}), which a running domain takes at "
            "its next boot",
            "above_maxmem",
        )
    if target_kib < domain.floor_kib:
        raise BadRequest(
            f"{bound(target_kib)} is below the floor of {domain.name} ({bound(domain.floor_kib)}); "
            f"allowed: {bound(domain.floor_kib)} to {bound(domain.maxmem_kib)}",
            "below_floor",
        )


def check_not_busy(domain: Domain, kind: str) -> None:
    """One operation per domain. Resizes and maxmem changes queue behind each other (a later absolute size
    supersedes an earlier one). A migration is refused while another job of the domain runs, or another migration
    or a power job of it is queued (two queued moves would book two destinations). Nothing else is accepted while
    a migration or a power job is queued or running: it would act on a host the domain is leaving, or meet another
    boot of it. A power job may queue behind resizes and maxmem changes, which run first (jobs.claim), as
    `xm mem-max` then `xm reboot` expects."""
    moving_or_booting = Q(kind__in=[Job.Kind.MIGRATE, *Job.POWER])
    if kind == Job.Kind.MIGRATE:
        busy = Job.objects.filter(domain=domain).filter(Q(state=Job.State.RUNNING) | moving_or_booting & Q(state=Job.State.QUEUED))
    else:
        busy = Job.objects.filter(moving_or_booting, domain=domain, state__in=Job.UNFINISHED)
    job = busy.order_by("pk").first()
    if job is not None:
        raise Conflict(
            f"{domain.name} is busy: job {job.pk} ({job.get_kind_display()}) is {job.state}; wait for it to end"
            + (", or cancel it" if job.state == Job.State.QUEUED else ""),
            "busy",
        )


def check_host_online(host: Host) -> None:
    if not host.is_online:
        since = f" since {host.status_changed:%Y-%m-%d %H:%M:%S} UTC" if host.status_changed else ""
        reason = f": {host.last_error}" if host.last_error else ""
        raise Unavailable(f"host unreachable: {host.name} is {host.status}{since}{reason}")


def check_host_accepts(host: Host) -> None:
    """A host in maintenance takes no domain: it is being emptied."""
    if host.maintenance:
        raise Conflict(f"{host.name} is in maintenance: it takes no domains until an admin of its team ends the maintenance", "in_maintenance")


def booked_kib(host: Host, *, exclude_domain: Domain | None = None) -> int:
    """Memory promised on `host`: running domains at the larger of their current size and any pending
    resize, plus domains on their way in (migrations) or booting (creations, starts, restarts). Pending work
    counts until it ends.
    """
    return booked_by_host([host.pk], exclude_domain=exclude_domain)[host.pk]


def booked_by_host(host_ids: list[int], *, exclude_domain: Domain | None = None) -> dict[int, int]:
    """booked_kib of many hosts, in three queries whatever their number."""
    excluded = exclude_domain.pk if exclude_domain is not None else None
    pending = Job.objects.filter(state__in=Job.UNFINISHED).filter(kind__in=[Job.Kind.RESIZE, Job.Kind.MIGRATE, *Job.BOOTING])
    pending_targets: dict[int, int] = {}
    # A queued resize acts wherever its domain runs when it runs: it is booked there, not where it was asked. A
    # domain that a restart boots again holds its size now until it stops, then the config's: the larger of them.
    resizes_and_restarts = pending.filter(kind__in=[Job.Kind.RESIZE, Job.Kind.RESTART], domain__host_id__in=host_ids)
    for domain_id, kind, params in resizes_and_restarts.values_list("domain_id", "kind", "params"):
        size = int(params["target_kib"] if kind == Job.Kind.RESIZE else params.get("memory_kib", 0))
        pending_targets[domain_id] = max(pending_targets.get(domain_id, 0), size)
    totals = dict.fromkeys(host_ids, 0)
    running = Domain.objects.filter(host_id__in=host_ids, state__in=RUNNING_STATES).values_list("host_id", "id", "memory_kib")
    counted = set()
    for host_id, domain_id, memory in running:
        if domain_id != excluded:
            totals[host_id] += max(memory, pending_targets.get(domain_id, 0))
            counted.add((host_id, domain_id))
    incoming = pending.filter(target_host_id__in=host_ids).values_list("target_host_id", "host_id", "kind", "domain_id", "params")
    for target_id, source_id, kind, domain_id, params in incoming:
        # A migration books its destination; a boot its host until the job ends (a restart of a domain still
        # running is counted above).
        coming = target_id != source_id or (kind in Job.BOOTING and not (kind == Job.Kind.RESTART and (target_id, domain_id) in counted))
        if coming and (domain_id is None or domain_id != excluded):
            totals[target_id] += int(params.get("memory_kib", 0))
    return totals


def team_memory_in_use(team_ids: list[int]) -> dict[int, int]:
    """The running memory booked on the hosts of each team: what its quota counts."""
    team_of_host = dict(Host.objects.filter(team_id__in=team_ids).values_list("pk", "team_id"))
    in_use = dict.fromkeys(team_ids, 0)
    for host_id, kib in booked_by_host(list(team_of_host)).items():
        in_use[team_of_host[host_id]] += kib
    return in_use


@dataclass(frozen=True)
class Destination:
    """A host that domains of another host could migrate to, as far as can be told without its lock."""

    host: Host
    free_kib: int  # its usable memory less what is booked there now
    closed: str  # why nothing may go there now ("offline", "in maintenance"), else ""


def destinations(actor: Actor, source: Host) -> list[Destination]:
    """The hosts the actor may migrate domains of `source` to, by name, with their room now (request_migrate
    checks again under the hosts' locks)."""
    hosts = list(rules.restrict(Host.objects.exclude(pk=source.pk), actor, "migrate").order_by("name"))
    booked = booked_by_host([host.pk for host in hosts])
    found = []
    for host in hosts:
        closed = "in maintenance" if host.maintenance else "" if host.is_online else host.get_status_display().lower()
        found.append(Destination(host, max(0, host.usable_kib - booked[host.pk]), closed))
    return found


def check_host_room(host: Host, adding_kib: int, *, exclude_domain: Domain | None = None) -> None:
    """Host capacity minus its reserve is never double-booked. Call with the host row locked."""
    booked = booked_kib(host, exclude_domain=exclude_domain)
    if booked + adding_kib > host.usable_kib:
        free = max(0, host.usable_kib - booked)
        raise Conflict(
            f"{host.name} has no room: {mib(adding_kib)} asked, {mib(free)} free "
            f"({mib(host.usable_kib)} usable after the host's reserve of {mib(host.reserved_kib)}, {mib(booked)} booked)",
            "no_room",
        )


def locked_host(host_id: int) -> Host:
    return Host.objects.select_for_update().get(pk=host_id)


def announce_host(host: Host, *other_team_ids: int | None) -> None:
    """Tell the host's page and its team's fleet pages (and those of `other_team_ids`, a team that lost it)
    that the host itself changed: its settings, its maintenance."""
    for team_id in dict.fromkeys([host.team_id, *other_team_ids]):
        publish("fleet", team_id, {"type": "hosts", "hosts": [host.pk]})
    publish("host", host.pk, {"type": "host", "host": host.pk})


def lock_hosts(host_ids) -> None:
    """Lock several hosts at once, in id order, for a transaction that makes several requests: one by one, it
    would hold the audit log's lock (taken by the first request's entry) while waiting for the next host, which
    a single request on that host holds while it waits for the audit log's lock: a deadlock."""
    list(Host.objects.select_for_update().filter(pk__in=sorted(set(host_ids))).order_by("pk").values_list("pk", flat=True))


def check_delegation(actor: Actor, team: Team | None, target_kib: int, adding_kib: int, *, grows: bool | None = None) -> None:
    """Range-bounded delegation, per team: an operator may grow one domain up to the team's operator_max_kib
    (set by the team's admins), and nobody but a superuser may take the team's running memory past its
    quota_kib (set by superusers). Shrinking is always allowed. `grows`: the domain ends larger than it is now
    (the limit's test), which a larger resize still queued does not change; `adding_kib`: what the request
    books beyond what is booked already (the quota's). Call inside the request's transaction: the
    team row lock serialises requests on different hosts of one team, which the host lock alone does not.
    """
    grows = adding_kib > 0 if grows is None else grows
    if team is None or actor.is_privileged or (adding_kib <= 0 and not grows):
        return
    team = Team.objects.select_for_update().get(pk=team.pk)  # after the host lock, always in this order
    is_admin = rules.allows(actor, "set_maxmem", team.pk)
    if grows and not is_admin and team.operator_max_kib is not None and target_kib > team.operator_max_kib:
        raise Forbidden(
            f"{mib(target_kib)} is above the team {team.name}'s limit of {mib(team.operator_max_kib)} for one domain "
            "that an operator may give; a team admin can give more",
            "team_limit",
        )
    if team.quota_kib is not None and adding_kib > 0:
        in_use = team_memory_in_use([team.pk])[team.pk]
        if in_use + adding_kib > team.quota_kib:
            raise Forbidden(
                f"the team {team.name}'s quota of {mib(team.quota_kib)} running memory would be exceeded: "
                f"{mib(in_use)} in use, {mib(adding_kib)} more asked, {mib(max(0, team.quota_kib - in_use))} left",
                "team_quota",
            )


# -- jobs -----------------------------------------------------------------------------------------------------


def _new_job(actor: Actor, kind: str, host: Host, *, domain: Domain | None = None, target_host: Host | None = None, **params) -> Job:
    job = Job.objects.create(
        kind=kind,
        domain=domain,
        host=host,
        target_host=target_host,
        params=params,
        actor_kind=actor.kind,
        actor_label=actor.label,
        actor_user=actor.user,
        queue=host.celery_queue,
    )
    transaction.on_commit(lambda: enqueue(job.pk, job.queue, job.kind))
    announce(job)  # the jobs pages show it queued
    return job


def enqueue(job_id: int, queue: str, kind: str) -> None:
    """Send the job's message. If the broker is down the job stays queued and the sweep sends it later."""
    try:
        current_app.send_task("domains.tasks.run_job", args=[job_id], queue=queue, time_limit=worker_time_limit_s(kind))
    except Exception:  # noqa: BLE001 - the database holds the job; the sweep re-sends it
        log.warning("job %s could not be enqueued now; the sweep will send it", job_id, exc_info=True)
        return
    Job.objects.filter(pk=job_id, state=Job.State.QUEUED).update(enqueued_at=db_now())


def _refused(actor: Actor, action: str, obj, error: ServiceError) -> None:
    if isinstance(error, Forbidden):
        record(actor, action, obj, result=AuditEntry.Result.REFUSED, message=error.message)


def audit_refusals(action: str):
    """Run a request; a permission refusal is audited after the failed transaction has rolled back. Every service
    that changes something wears it (here and in balloonweb/api/teams.py)."""

    def wrap(function):
        def run(actor: Actor, obj, *args, **kwargs):
            try:
                return function(actor, obj, *args, **kwargs)
            except ServiceError as error:
                _refused(actor, action, obj, error)
                raise

        run.__name__ = function.__name__
        run.__doc__ = function.__doc__
        return run

    return wrap


def _where_it_runs(domain: Domain) -> int:
    """The domain's host as the database has it now: a caller's copy (a page, an autoscaler step) may be older
    than a migration."""
    return Domain.objects.filter(pk=domain.pk).values_list("host_id", flat=True).get()


def _check_not_moved(domain: Domain, host: Host) -> None:
    """The domain read under its host's lock is still on that host (a migration may have ended in between)."""
    if domain.host_id != host.pk:
        raise Conflict(f"{domain.name} has just moved to {domain.host.name}; try again", "domain_moved")


def _locked_for(actor: Actor, action: str, domain: Domain) -> tuple[Host, Domain]:
    """Lock the domain's host, read the domain afresh under that lock, and check the actor's right."""
    host = locked_host(_where_it_runs(domain))
    domain = Domain.objects.select_related("host__team").get(pk=domain.pk)
    _check_not_moved(domain, host)
    check_permission(actor, action, domain)
    return host, domain


@audit_refusals("domain.resize")
def request_resize(actor: Actor, domain: Domain, size: str | int) -> Job:
    """Balloon a running domain to an absolute size (`xm mem-set`)."""
    target_kib = parse_size(size)
    with transaction.atomic():
        host, domain = _locked_for(actor, "resize", domain)
        check_memory_bounds(domain, target_kib)
        check_not_busy(domain, Job.Kind.RESIZE)
        check_host_online(host)
        current = booked_kib(host) - booked_kib(host, exclude_domain=domain)
        check_delegation(actor, domain.host.team, target_kib, target_kib - current, grows=target_kib > domain.memory_kib)
        if target_kib > current:
            check_host_room(host, target_kib, exclude_domain=domain)
        job = _new_job(actor, Job.Kind.RESIZE, host, domain=domain, target_kib=target_kib)
        record(actor, "domain.resize", domain, before={"memory_kib": domain.memory_kib}, after={"memory_kib": target_kib}, job=job)
    return job


@audit_refusals("domain.maxmem")
def request_set_maxmem(actor: Actor, domain: Domain, size: str | int) -> Job:
    """Set maxmem in the persistent config (`xm mem-max`); a running domain takes it at its next boot."""
    maxmem_kib = parse_size(size)
    with transaction.atomic():
        host, domain = _locked_for(actor, "set_maxmem", domain)
        if domain.state == Domain.State.GONE:
            raise Conflict(f"{domain.name} is no longer on {host}", "domain_gone")
        if maxmem_kib < domain.floor_kib:
            raise BadRequest(f"maxmem {bound(maxmem_kib)} is below the floor of {domain.name} ({bound(domain.floor_kib)})", "below_floor")
        check_not_busy(domain, Job.Kind.MAXMEM)
        check_host_online(host)
        job = _new_job(actor, Job.Kind.MAXMEM, host, domain=domain, maxmem_kib=maxmem_kib)
        record(actor, "domain.maxmem", domain, before={"config_maxmem_kib": domain.config_maxmem_kib}, after={"config_maxmem_kib": maxmem_kib}, job=job)
    return job


@audit_refusals("domain.floor")
def set_floor(actor: Actor, domain: Domain, size: str | int) -> Domain:
    """The floor is BalloonWeb's own rule, not the hypervisor's: it changes at once, without a job."""
    floor_kib = parse_size(size)
    with transaction.atomic():
        # Under the host's lock, as request_set_maxmem: a maxmem lowered at the same time cannot pass below it.
        host, domain = _locked_for(actor, "set_floor", domain)
        if domain.state == Domain.State.GONE:
            raise Conflict(f"{domain.name} is no longer on {host}", "domain_gone")
        # The floor must hold after the next boot too, under the config's maxmem and one on its way there.
        maxmems = [("", domain.maxmem_kib)]
        if domain.config_maxmem_kib:
            maxmems.append(("in its config, from its next boot", domain.config_maxmem_kib))
        pending = Job.objects.filter(domain=domain, kind=Job.Kind.MAXMEM, state__in=Job.UNFINISHED).values_list("params", flat=True)
        maxmems += [("asked for by a job still to run", int(params["maxmem_kib"])) for params in pending]
        when, lowest = min(maxmems, key=lambda pair: pair[1])
        if floor_kib > lowest:
            raise BadRequest(
                f"a floor of {bound(floor_kib)} is above the maxmem of {domain.name} ({bound(lowest)}{' ' + when if when else ''}); "
                f"allowed: up to {bound(lowest)}",
                "above_maxmem",
            )
        before = domain.floor_kib
        domain.floor_kib = floor_kib
        domain.save(update_fields=["floor_kib"])
        record(actor, "domain.floor", domain, result=AuditEntry.Result.SUCCEEDED, before={"floor_kib": before}, after={"floor_kib": floor_kib})
        publish("host", domain.host_id, {"type": "bounds", "domain": domain.pk})  # its page's figures show it
    return domain


@audit_refusals("domain.migrate")
def request_migrate(actor: Actor, domain: Domain, target: Host) -> Job:
    """Live-migrate a running domain to another host (`xm migrate`)."""
    with transaction.atomic():
        # Lock both hosts in id order, so that two opposite migrations cannot deadlock.
        source_id = _where_it_runs(domain)
        locked = {h.pk: h for h in Host.objects.select_for_update().filter(pk__in=[source_id, target.pk]).order_by("pk")}
        source, target = locked[source_id], locked[target.pk]
        domain = Domain.objects.select_related("host__team").get(pk=domain.pk)
        _check_not_moved(domain, source)
        check_permission(actor, "migrate", domain)
        check_permission(actor, "migrate", target)
        if source.pk == target.pk:
            raise BadRequest(f"{domain.name} already runs on {target.name}; pick another host", "same_host")
        if not domain.is_running:
            raise BadRequest(f"{domain.name} is {domain.get_state_display()}: only a running domain migrates live", "domain_not_running")
        check_not_busy(domain, Job.Kind.MIGRATE)
        check_host_online(source)
        check_host_online(target)
        check_host_accepts(target)
        memory_kib = booked_kib(source) - booked_kib(source, exclude_domain=domain)
        check_host_room(target, memory_kib)
        if target.team_id != source.team_id:  # the memory moves into another team's quota
            check_delegation(actor, target.team, memory_kib, memory_kib)
        job = _new_job(actor, Job.Kind.MIGRATE, source, domain=domain, target_host=target, memory_kib=memory_kib)
        record_in_teams(actor, "domain.migrate", domain, [source.team_id, target.team_id], before={"host": source.name},
                        after={"host": target.name}, job=job)
    return job


@audit_refusals("domain.create")
def request_create(actor: Actor, host: Host, config: str | DomainConfig) -> Job:
    """Define and start a domain from a Xen-style config (`xm create`)."""
    if isinstance(config, str):
        try:
            config = parse_xen_config(config)
        except ConfigError as exc:
            raise BadRequest(str(exc), "bad_config") from exc
    with transaction.atomic():
        host = locked_host(host.pk)
        check_permission(actor, "create", host)
        check_host_online(host)
        check_host_accepts(host)
        if Domain.objects.present().filter(host=host, name=config.name).exists():
            raise Conflict(f"{host.name} already has a domain named {config.name}", "name_taken")
        creating = Job.objects.filter(kind=Job.Kind.CREATE, state__in=Job.UNFINISHED, host=host, params__name=config.name).first()
        if creating is not None:
            # Both would pass every check and book memory; the second would only fail at libvirt's define.
            raise Conflict(f"{config.name} is already being created on {host.name} (job {creating.pk})", "name_taken")
        if config.uuid and (known := Domain.objects.select_related("host").filter(uuid=config.uuid).first()):
            # One UUID is one machine: a second one would take over the first one's row (its team, history,
            # booking). A gone one's row is taken back by the same machine created again in its own team only.
            if known.state != Domain.State.GONE or known.host.team_id != host.team_id:
                visible = rules.allows(actor, "view", known.host.team_id)
                whose = f"{known.name}'s, on {known.host.name}" if visible else "taken by a domain of another team"
                gone = " (gone, and its history is its team's)" if visible and known.state == Domain.State.GONE else ""
                raise Conflict(f"the UUID {config.uuid} is {whose}{gone}; leave the uuid line out for a new one", "uuid_taken")
        check_host_room(host, config.memory_kib)
        check_delegation(actor, host.team, config.memory_kib, config.memory_kib)
        job = _new_job(
            actor, Job.Kind.CREATE, host, target_host=host,
            name=config.name, memory_kib=config.memory_kib, maxmem_kib=config.maxmem_kib,
            vcpus=config.vcpus, uuid=config.uuid, description=config.description,
        )
        record(actor, "domain.create", host, after={"name": config.name, "memory_kib": config.memory_kib, "maxmem_kib": config.maxmem_kib, "vcpus": config.vcpus}, job=job)
    return job


POWER_ACTIONS = {
    "start": "start a domain that is not running, with its persistent config (`xm start`)",
    "shutdown": "ask the guest to shut down, or with force turn it off at once (`xm shutdown`, `xm destroy`)",
    "restart": "shut down, then start with the persistent config: how a running domain takes a new maxmem",
}


@audit_refusals("domain.power")
def request_power(actor: Actor, domain: Domain, action: str, *, force: bool = False) -> Job:
    """Start, shut down or restart a domain. A boot takes the persistent config's memory, which must fit on the
    host and in the team's quota; a domain does not start on a host in maintenance."""
    if action not in POWER_ACTIONS:
        raise BadRequest(f"{action!r} is not a power action: use start, shutdown or restart", "bad_power_action")
    with transaction.atomic():
        host, domain = _locked_for(actor, "power", domain)
        if domain.state == Domain.State.GONE:
            raise Conflict(f"{domain.name} is no longer on {host.name}: it vanished from the host", "domain_gone")
        if action == "start" and domain.is_running:
            raise Conflict(f"{domain.name} is already {domain.get_state_display()}", "domain_running")
        if action != "start" and not domain.is_running:
            raise BadRequest(f"{domain.name} is {domain.get_state_display()}: only a running domain is shut down or restarted; start it instead", "domain_not_running")
        check_not_busy(domain, Job.Kind(action))
        check_host_online(host)
        if action == "start":
            check_host_accepts(host)
        boots = action != "shutdown"
        boot_kib = domain.config_memory_kib or domain.memory_kib
        if boots:
            check_host_room(host, boot_kib, exclude_domain=domain)
            check_delegation(actor, host.team, boot_kib, boot_kib - (domain.memory_kib if domain.is_running else 0))
        params = {"memory_kib": boot_kib} if boots else {}
        if action != "start":
            params["force"] = force
        # A boot books its memory on its host (target_host) until the job ends, as a creation does.
        job = _new_job(actor, Job.Kind(action), host, domain=domain, target_host=host if boots else None, **params)
        done = {"action": f"{action} at once" if force and action != "start" else action}
        record(actor, "domain.power", domain, before={"state": domain.state}, job=job,
               after=done | ({"memory_kib": boot_kib} if boots else {}))
    return job


@audit_refusals("job.cancel")
def cancel_job(actor: Actor, job: Job) -> Job:
    """A queued job is cancelled at once. A running migration is asked to stop: its worker aborts it, and the
    domain goes on running on its source (the job ends cancelled), unless the move finishes first. Any other
    running job is already done talking to the hypervisor, or nearly: it cannot be cancelled."""
    with transaction.atomic():
        job = Job.objects.select_related("host__team", "domain").get(pk=job.pk)
        check_permission(actor, "cancel_job", job)
        # Queued again after its worker stopped answering (attempts > 0), it may have acted already: a resize's
        # balloon set, a cancel would say it was not.
        cancelled = Job.objects.filter(pk=job.pk, state=Job.State.QUEUED, attempts=0).update(
            state=Job.State.CANCELLED, finished=db_now(), error=f"cancelled by {actor}"
        )
        stopping = not cancelled and Job.objects.filter(
            pk=job.pk, kind=Job.Kind.MIGRATE, state=Job.State.RUNNING, stop_requested_by=""
        ).update(stop_requested_by=str(actor)[:150])
        if not cancelled and not stopping:
            job.refresh_from_db()
            if job.state == Job.State.RUNNING and job.stop_requested_by:
                raise Conflict(f"job {job.pk} is already stopping, as {job.stop_requested_by} asked", "not_cancellable")
            if job.state == Job.State.QUEUED:
                raise Conflict(
                    f"job {job.pk} ({job.get_kind_display()}) has run once already (its worker stopped answering) and "
                    "is queued to run again: it may have made its change, so it cannot be cancelled; wait for it",
                    "not_cancellable",
                )
            raise Conflict(
                f"job {job.pk} ({job.get_kind_display()}) is {job.state}: only a queued job or a running migration "
                "can be cancelled",
                "not_cancellable",
            )
        job.refresh_from_db()
        announce(job)
        message = "asked the running migration to stop" if stopping else ""
        record(actor, "job.cancel", job.domain or job.host, result=AuditEntry.Result.SUCCEEDED, message=message, job=job)
    return job


def find_domain(actor: Actor, name: str, host_name: str | None = None) -> Domain:
    """A domain by name, as `xm` names them; a name on several hosts needs the host."""
    domains = rules.restrict(Domain.objects.present().select_related("host"), actor, "view").filter(name=name)
    if host_name:
        domains = domains.filter(host__name=host_name)
    found = list(domains[:10])
    if not found and (hv_id := as_id(name)) is not None:
        # xm takes the ID `xm list` shows as well (a running domain's, unique on its host).
        by_id = rules.restrict(Domain.objects.running().select_related("host"), actor, "view").filter(hv_id=hv_id)
        found = list((by_id.filter(host__name=host_name) if host_name else by_id)[:10])
    if not found:
        where = f" on host {host_name}" if host_name else ""
        raise NotFound(f"no domain named {name}{where}")
    if len(found) > 1:
        hosts = ", ".join(d.host.name for d in found)
        raise BadRequest(f"{name} is on several hosts ({hosts}); say which with --host", "ambiguous")
    return found[0]


def find_host(actor: Actor, name: str, action: str = "view") -> Host:
    host = rules.restrict(Host.objects.all(), actor, "view").filter(name=name).first()
    if host is None:
        raise NotFound(f"no host named {name}")
    return host
