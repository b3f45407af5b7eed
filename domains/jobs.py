"""Running a job: claim it (compare-and-set), act through the driver, record the outcome and what the
hypervisor now says. The Celery task is a thin wrapper around `run_job`.
"""

import logging
import time
from dataclasses import replace
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, TextField, Value
from django.db.models.functions import Concat
from django.utils import timezone

from balloonweb.access import rules
from balloonweb.access.actors import Actor
from balloonweb.audit.log import record_in_teams
from balloonweb.audit.models import AuditEntry
from balloonweb.live.publish import publish_many
from hosts.lab.migration import migration_options as lab_migration_options
from hosts.drivers import DomainConfig, DomainInfo, DriverError, GuestDidNotShutDown, HostUnreachable, MigrationProgress, MigrationStopped, driver_for
from hosts.models import RUNNING_STATES, Host, queue_name
from hosts.units import format_mib

from . import inventory
from .poller import dispatch_per_group
from .clock import db_now
from .models import Domain, Job

log = logging.getLogger(__name__)
SHUTDOWN_POLL_S = 0.5
SWEEP_MARGIN_S = 5  # past a job's time limit: the worker has been killed by then (worker_time_limit_s)
# How long the sweep keeps asking a migration's destination whether the domain arrived, when it does not answer.
DESTINATION_GRACE_S = 600


class Claim:
    RUN = "run"
    BUSY = "busy"  # another job of the domain is running: the task tries again shortly
    SKIP = "skip"  # not queued any more (done, cancelled, or claimed by another worker)


def claim(job_id: int, worker: str = "") -> str:
    """queued -> running, only if no other job of the same domain runs. The domain row lock serialises claims."""
    superseded_by = None
    with transaction.atomic():
        job = Job.objects.filter(pk=job_id).first()
        if job is None or job.state != Job.State.QUEUED:
            return Claim.SKIP
        if job.kind in Job.ARRIVING and job.target_host_id:
            # Maintenance is checked when a job is asked for, and again here, under the host's lock (which
            # maintenance takes to begin): a move or boot asked before it began would land on an emptied host.
            target = Host.objects.select_for_update().filter(pk=job.target_host_id).first()
            if target is not None and target.maintenance:
                _finish(job, Job.State.CANCELLED, error_code="in_maintenance", was=Job.State.QUEUED,
                        error=f"{target.name} went into maintenance after this job was asked: it takes no domain now")
                return Claim.SKIP
        if job.domain_id:
            # of=self and no ordering: the model orders by host name, and a join would lock the host row as well,
            # against the order in which requests take it (host, then domain): a deadlock.
            Domain.objects.select_for_update(of=("self",)).filter(pk=job.domain_id).order_by().first()
            waiting_for_another = Job.objects.filter(domain_id=job.domain_id, state=Job.State.RUNNING).exists() or (
                # a maxmem change asked before a restart is what the restart is for
                job.kind in Job.POWER and Job.objects.filter(domain_id=job.domain_id, state=Job.State.QUEUED, pk__lt=job.pk).exists()
            )
            if waiting_for_another:
                # Its message is alive (the task retries): the sweep is not to send it again meanwhile.
                Job.objects.filter(pk=job_id).update(enqueued_at=db_now())
                return Claim.BUSY
            superseded_by = _newer_resize(job)
        if superseded_by is None:
            now = db_now()
            claimed = Job.objects.filter(pk=job_id, state=Job.State.QUEUED).update(
                state=Job.State.RUNNING, started=now, heartbeat=now, attempts=F("attempts") + 1, worker=worker
            )
            return Claim.RUN if claimed else Claim.SKIP
    # Ended (and audited) after the domain's lock is released: the audit log's lock is taken after the domain's
    # nowhere else, and a request that holds the audit log's lock may be waiting for the domain row (a deadlock).
    with transaction.atomic():
        _finish(job, Job.State.CANCELLED, error=f"superseded by job {superseded_by}, a later resize of the same domain",
                was=Job.State.QUEUED)
    return Claim.SKIP


def _newer_resize(job: Job) -> int | None:
    """A resize to an absolute size is pointless once a later resize of the domain is accepted."""
    if job.kind != Job.Kind.RESIZE:
        return None
    return (
        Job.objects.filter(domain_id=job.domain_id, kind=Job.Kind.RESIZE, pk__gt=job.pk)
        .filter(state__in=[Job.State.QUEUED, Job.State.RUNNING, Job.State.SUCCEEDED])
        .values_list("pk", flat=True)
        .first()
    )


def run_job(job_id: int, worker: str = "") -> str:
    inventory.release_removed_hosts()
    outcome = claim(job_id, worker)
    if outcome != Claim.RUN:
        return outcome
    job = Job.objects.select_related("domain__host", "host", "target_host").get(pk=job_id)
    announce(job)
    failure: tuple[str, str, str] | None = None
    ended_as = Job.State.FAILED
    try:
        HANDLERS[job.kind](job)
    except MigrationStopped as exc:
        who = Job.objects.filter(pk=job_id).values_list("stop_requested_by", flat=True).get()
        where = f"{job.domain.name} goes on running on {job.host.name}"
        failure, ended_as = (exc.code, f"cancelled by {who}, {exc.message}: {where}", exc.detail), Job.State.CANCELLED
    except HostUnreachable as exc:
        hosts = [host for host in (job.host, job.target_host, job.domain.host if job.domain else None) if host is not None]
        silent = next((host for host in hosts if host.uri == exc.uri), job.host)  # a move talks to two hosts
        failure = (exc.code, f"host unreachable: {silent.name} does not answer", exc.detail or exc.message)
    except DriverError as exc:
        failure = (exc.code, exc.message, exc.detail)
    except Exception as exc:  # noqa: BLE001 - a job must end, whatever went wrong
        log.exception("job %s failed unexpectedly", job_id)
        failure = ("internal_error", f"internal error: {exc.__class__.__name__}: {exc}", "")
    # The row must say what the hypervisor says before the job stops counting as pending in booked_kib().
    _refresh_domain(job, succeeded=failure is None)
    if failure:
        _fail(job, *failure, state=ended_as)
    else:
        _succeed(job)
    return job.state


# -- handlers -------------------------------------------------------------------------------------------------


def _resize(job: Job) -> None:
    target = job.params["target_kib"]
    # The domain's host now, not when the job was asked for: a migration may have moved it meanwhile.
    driver_for(job.domain.host.uri).set_memory(str(job.domain.uuid), target, live=True, config=False)
    _log(job, f"balloon target of {job.domain.name} set to {format_mib(target)}")


def _set_maxmem(job: Job) -> None:
    maxmem = job.params["maxmem_kib"]
    driver_for(job.domain.host.uri).set_maxmem(str(job.domain.uuid), maxmem)
    when = "at its next boot" if job.domain.is_running else "at its next start"
    _log(job, f"maxmem of {job.domain.name} set to {format_mib(maxmem)} in the persistent config; it takes effect {when}")


def _migrate(job: Job) -> None:
    domain, source, target = job.domain, job.host, job.target_host
    uuid = str(domain.uuid)
    source_driver, target_driver = driver_for(source.uri), driver_for(target.uri)
    # Not idempotent: ask the hypervisors where the domain really is before moving it.
    on_target = target_driver.domain(uuid)
    on_source = source_driver.domain(uuid)
    if on_target is not None and on_source is None:
        _log(job, f"{domain.name} already runs on {target.name}; nothing to move")
        _arrived(domain.pk, target, on_target)
        domain.host = target
        return
    if on_source is None:
        raise DriverError(f"{domain.name} is on neither {source.name} nor {target.name}")

    # The driver calls these while the move goes on (libvirt's in a thread of its own): one that raised, on a
    # database that is busy a moment, would leave that thread moving the domain while the job ended as failed.
    def progress(report: MigrationProgress) -> None:
        try:
            _this_attempt(job).update(progress=report.percent, heartbeat=db_now())
            if report.percent != job.progress:  # the heartbeat every time, the pages only when it moved
                job.progress = report.percent
                announce(job)
        except Exception:  # noqa: BLE001 - see above; the next report tries again
            log.warning("progress of job %s not recorded", job.pk, exc_info=True)

    def stop_requested() -> bool:
        try:
            return Job.objects.filter(pk=job.pk).exclude(stop_requested_by="").exists()
        except Exception:  # noqa: BLE001 - see above; asked again at the next report
            log.warning("job %s: could not read whether a stop was asked", job.pk, exc_info=True)
            return False

    options = lab_migration_options(source.uri, target.uri, uuid)
    result = source_driver.migrate(uuid, target_driver, progress, stop_requested, **options)
    try:  # where it runs first: the rest is the job's log
        arrived = target_driver.domain(uuid)
    except DriverError:  # the move is done: the row says where it runs, the next poll reads its figures
        arrived = None
    _arrived(domain.pk, target, arrived)
    domain.host = target
    _log(job, result.detail or f"{domain.name} migrated live from {source.name} to {target.name}")
    if stop_requested():
        _log(job, "it was asked to stop, but the move had ended before it could be stopped")


def _arrived(domain_id: int, host: Host, info: DomainInfo | None) -> None:
    """The domain runs on `host` after a move: recorded from what that host says, while the row still names the
    host it left, so that the inventory sees a move (another host) rather than a boot (a new process on the
    same host), which would make the autoscaler forget its watch of the balloon."""
    if info is None:
        Domain.objects.filter(pk=domain_id).update(host=host, job_wrote_at=db_now())
    else:
        inventory.record_domain(host, info)


def _create(job: Job) -> None:
    params = job.params
    config = DomainConfig(
        params["name"], params["memory_kib"], params["maxmem_kib"], params.get("vcpus", 1), params.get("uuid"), params.get("description", "")
    )
    info = driver_for(job.host.uri).define_and_start(config)
    with transaction.atomic():  # the new row and the job naming it together: the host's booking counts one of them
        domain = inventory.record_domain(job.host, info)
        Job.objects.filter(pk=job.pk).update(domain=domain)
    job.domain = domain
    _log(job, f"{info.name} defined and started on {job.host.name} with {format_mib(info.memory_kib)} (maxmem {format_mib(info.maxmem_kib)})")


def _start(job: Job) -> None:
    driver_for(job.domain.host.uri).start(str(job.domain.uuid))
    _log(job, f"{job.domain.name} started on {job.domain.host.name} with its persistent config")


def _shutdown(job: Job) -> None:
    _turn_off(job)


def _restart(job: Job) -> None:
    _turn_off(job)
    _start(job)


def _turn_off(job: Job) -> None:
    """Force: off at once (`xm destroy`). Else ask the guest and wait for it, with a heartbeat, at most
    SHUTDOWN_WAIT: a guest without ACPI support ignores the request, and the job must say so rather than hang."""
    domain, driver = job.domain, driver_for(job.domain.host.uri)
    uuid = str(domain.uuid)
    if job.params.get("force"):
        driver.destroy(uuid)
        _log(job, f"{domain.name} turned off at once (forced)")
        return
    driver.shutdown(uuid)
    _log(job, f"{domain.name} asked to shut down")
    deadline = time.monotonic() + settings.SHUTDOWN_WAIT
    while time.monotonic() < deadline:
        info = driver.domain(uuid)
        if info is None or info.state not in (*RUNNING_STATES, Domain.State.SHUTDOWN):
            _log(job, f"{domain.name} shut down")
            return
        _this_attempt(job).update(heartbeat=db_now())
        time.sleep(SHUTDOWN_POLL_S)
    raise GuestDidNotShutDown(
        f"{domain.name} did not shut down within {settings.SHUTDOWN_WAIT:.0f} s: its guest may ignore the request "
        "(no ACPI support); it still runs. Force it off to stop it at once"
    )


HANDLERS = {
    Job.Kind.RESIZE: _resize, Job.Kind.MAXMEM: _set_maxmem, Job.Kind.MIGRATE: _migrate, Job.Kind.CREATE: _create,
    Job.Kind.START: _start, Job.Kind.SHUTDOWN: _shutdown, Job.Kind.RESTART: _restart,
}


# -- outcomes -------------------------------------------------------------------------------------------------


def _this_attempt(job: Job):
    """The job's row while it is still at the attempt this process knows: once the sweep has taken the job from a
    worker it took for lost (and perhaps given it to another), what the first one writes late is dropped."""
    return Job.objects.filter(pk=job.pk, attempts=job.attempts)


def _log(job: Job, line: str) -> None:
    """Append a line, in the database: the sweep's lines and a late worker's both stay, each in its place."""
    text = f"{timezone.now().strftime('%H:%M:%S')} {line}\n"
    job.log = f"{job.log}{text}"
    Job.objects.filter(pk=job.pk).update(log=Concat(F("log"), Value(text), output_field=TextField()))


def _finish(job: Job, state: str, *, error_code: str = "", error: str = "", was: str = Job.State.RUNNING) -> bool:
    """`was` (running, or queued for a job cancelled before it ran) -> final state, once, at the attempt this
    process knows. Returns False if another party finished it first, or the sweep took it back."""
    now = db_now()
    changed = _this_attempt(job).filter(state=was).update(
        state=state, finished=now, error_code=error_code, error=error, progress=100 if state == Job.State.SUCCEEDED else F("progress")
    )
    if changed:
        job.state, job.finished, job.error_code, job.error = state, now, error_code, error
        if state == Job.State.SUCCEEDED:
            job.progress = 100
        _audit_outcome(job)
        announce(job)
    return bool(changed)


def _succeed(job: Job) -> None:
    with transaction.atomic():
        _finish(job, Job.State.SUCCEEDED)


def _fail(job: Job, code: str, message: str, detail: str = "", *, state: str = Job.State.FAILED) -> None:
    if detail and detail != message:
        _log(job, f"hypervisor said: {detail}")
    with transaction.atomic():
        _finish(job, state, error_code=code, error=message)


def _audit_outcome(job: Job) -> None:
    actor = Actor(job.actor_kind, job.actor_label, job.actor_user)
    # Cancelled here: stopped while it ran, or superseded before it ran (a person's cancel is recorded as such).
    failed = job.state in (Job.State.FAILED, Job.State.CANCELLED)
    result = AuditEntry.Result.SUCCEEDED if job.state == Job.State.SUCCEEDED else AuditEntry.Result.FAILED if failed else None
    if result:
        # In the team that asked, and in the destination's when it moved across teams.
        teams = [job.host.team_id, job.target_host.team_id if job.target_host_id else None]
        record_in_teams(actor, f"job.{job.kind}", job.domain or job.host, teams, result=result, message=job.error, job=job)


def _refresh_domain(job: Job, *, succeeded: bool = False) -> None:
    """After a job, the row says what the hypervisor says (also after a failure). After a resize the row keeps
    the target: a real balloon takes a second to get there, and libvirt reports where it is on the way."""
    if job.domain_id is None:
        return
    domain = Domain.objects.select_related("host").get(pk=job.domain_id)
    try:
        info = driver_for(domain.host.uri).domain(str(domain.uuid))
    except DriverError:
        if succeeded and job.kind == Job.Kind.RESIZE:
            # The row must hold the new size before the job's booking goes: at the old size, a grow's room
            # would look free until the poller reached the host again.
            Domain.objects.filter(pk=domain.pk).update(memory_kib=job.params["target_kib"], job_wrote_at=db_now())
        return  # the poller will catch up once the host answers
    if info is None:
        return
    if succeeded and job.kind == Job.Kind.RESIZE:
        info = replace(info, memory_kib=job.params["target_kib"])
    inventory.record_domain(domain.host, info)
    # The fleet page's bars move now rather than at the next poll: the bars of both hosts, after a move across
    # teams in both teams' fleets.
    moved_from = job.host if job.kind == Job.Kind.MIGRATE and job.host_id != domain.host_id else None
    fleet: dict[int | None, list[int]] = {domain.host.team_id: [domain.host_id]}
    if moved_from is not None:
        fleet.setdefault(moved_from.team_id, []).append(moved_from.pk)
    publish_many([("host", domain.host_id, {"type": "domain", "domain": domain.pk})] + [
        ("fleet", team_id, {"type": "hosts", "hosts": host_ids}) for team_id, host_ids in fleet.items()
    ])


def announce(job: Job) -> None:
    """Tell the pages watching the job, its hosts and its team's jobs list that it changed (a hint)."""
    payload = {"type": "job", "job": job.pk, "state": job.state, "progress": job.progress, "domain": job.domain_id}
    hosts = dict.fromkeys([job.host_id, job.target_host_id or job.host_id])
    # One send for all: a worker sends each batch through a Redis connection of its own, and a migration
    # reports its progress every half second.
    publish_many([("host", host_id, payload) for host_id in hosts] + [
        ("jobs", team_id, payload) for team_id in rules.team_ids_of(job)  # across teams: in both teams' lists
    ])


# -- the sweep ------------------------------------------------------------------------------------------------


def time_limit_s(kind: str) -> float:
    if kind == Job.Kind.MIGRATE:
        return settings.MIGRATE_TIME_LIMIT
    if kind in Job.BOOTING or kind in Job.POWER:  # a boot (of a real guest) takes longer than a balloon call
        return settings.SHUTDOWN_WAIT + settings.RESIZE_TIME_LIMIT
    return settings.RESIZE_TIME_LIMIT


def worker_time_limit_s(kind: str) -> float:
    """How long a worker may spend on a job before Celery kills it, counted from the task's start. The sweep takes
    a job for lost only once this much has passed since the job started too (sweep()), so the worker is dead by
    then: a call that hangs and returns after the sweep has failed or re-queued the job would act on a job that
    others now act on. This kill is also what ends a migration that runs past MIGRATE_TIME_LIMIT; a restart
    waits for its shutdown, then boots."""
    if kind == Job.Kind.MIGRATE:
        return settings.MIGRATE_TIME_LIMIT + 30
    if kind == Job.Kind.RESTART:
        return settings.SHUTDOWN_WAIT + time_limit_s(kind)
    return time_limit_s(kind)


def dispatch_sweeps() -> list[str]:
    """One sweep per host group, on that group's poll queue: its workers sit near its hosts, with their
    credentials, and a sweep asks the hypervisors where a lost move ended (a central one could not reach them)."""
    return dispatch_per_group("domains.tasks.sweep_group")


def sweep(queue_group: str | None = None) -> dict:
    """Finish what dead workers left, and re-send queued jobs whose message was lost, for the jobs of one host
    group's hosts (all when None). Runs periodically."""
    now = db_now()
    counts = {"requeued": 0, "resent": 0, "failed": 0, "succeeded": 0, "waiting": 0}
    running = Job.objects.filter(state=Job.State.RUNNING)
    if queue_group is not None:
        running = running.filter(host__queue_group=queue_group)
    for job in running.select_related("domain", "host", "target_host"):
        if job.heartbeat and now - job.heartbeat < timedelta(seconds=time_limit_s(job.kind) + SWEEP_MARGIN_S):
            continue
        if job.started and now - job.started < timedelta(seconds=worker_time_limit_s(job.kind) + SWEEP_MARGIN_S):
            continue  # its worker may still be alive: Celery has not killed it yet
        counts[_recover(job)] += 1
    stale = now - timedelta(seconds=settings.REQUEUE_AFTER)
    from .services import enqueue

    queued = Job.objects.filter(state=Job.State.QUEUED, created__lt=stale).exclude(enqueued_at__gt=stale)
    if queue_group is not None:
        queued = queued.filter(host__queue_group=queue_group)
    for job_id, queue, kind, group in queued.values_list("pk", "queue", "kind", "host__queue_group"):
        # To the host's queue now: one moved to another queue group since has no worker on its old queue.
        if queue != (current := queue_name("jobs", group)):
            Job.objects.filter(pk=job_id).update(queue=current)
        enqueue(job_id, current, kind)
        counts["resent"] += 1
    return counts


def _still_on_source(job: Job) -> bool:
    """Whether the source still has the domain (True when it cannot say: a move is not taken as ended on doubt)."""
    try:
        return driver_for(job.host.uri).domain(str(job.domain.uuid)) is not None
    except DriverError:
        return True


def _recover(job: Job) -> str:
    """A running job whose worker stopped answering: resizes are idempotent and run again; a migration is
    finished by asking where the domain now runs."""
    if job.kind in (Job.Kind.RESIZE, Job.Kind.MAXMEM) and job.attempts < 3:
        from .services import enqueue

        queue = job.host.celery_queue  # the host's queue now (sweep)
        if _this_attempt(job).filter(state=Job.State.RUNNING).update(state=Job.State.QUEUED, enqueued_at=None, queue=queue):
            _log(job, "the worker running this job stopped answering; queued again (the change is idempotent)")
            transaction.on_commit(lambda: enqueue(job.pk, queue, job.kind))
            return "requeued"
    if job.kind == Job.Kind.MIGRATE:
        try:
            on_target = driver_for(job.target_host.uri).domain(str(job.domain.uuid))
        except DriverError:
            # Only the destination can say whether the move ended there: failing the job now could record a
            # domain that runs there as not moved. Asked again at each sweep, for a while.
            lost_for = db_now() - (job.heartbeat or job.started)
            if lost_for < timedelta(seconds=time_limit_s(job.kind) + SWEEP_MARGIN_S + DESTINATION_GRACE_S):
                return "waiting"
            _fail(job, "worker_lost", f"the worker running this job stopped answering, and so did {job.target_host.name}: "
                  f"where {job.domain.name} runs is known once a poll reaches both hosts")
            return "failed"
        running_there = on_target is not None and on_target.state in RUNNING_STATES and on_target.state != Domain.State.PAUSED
        if on_target is not None and not running_there and _still_on_source(job):
            # The incoming copy, paused until a move ends that did not, or a definition left there shut off by an
            # earlier move: while the source still has the domain, it did not move.
            on_target = None
        if on_target is not None:
            _arrived(job.domain_id, job.target_host, on_target)
            _log(job, f"the worker stopped answering, but {job.domain.name} runs on {job.target_host.name}")
            _succeed(job)
            _refresh_domain(job)
            return "succeeded"
    done = _power_done(job)
    _refresh_domain(job)  # before the job's booking goes, as run_job does
    if done:
        _log(job, f"the worker stopped answering, but {done}")
        _succeed(job)
        return "succeeded"
    _fail(job, "worker_lost", f"the worker running this job stopped answering (no heartbeat for {time_limit_s(job.kind):.0f} s)")
    return "failed"


def _power_done(job: Job) -> str:
    """For a lost create, start, shutdown or restart: what the hypervisor says that shows it was done ("" if not,
    or cannot say). A boot the worker made before it died is a domain that runs: failing its job let the poll
    adopt it as a stranger, and freed its booking."""
    try:
        if job.kind == Job.Kind.CREATE:
            seen = [d for d in driver_for(job.host.uri).list_domains()
                    if d.name == job.params["name"] and (not job.params.get("uuid") or str(d.uuid) == job.params["uuid"])]
            if not seen or seen[0].state not in RUNNING_STATES:
                return ""
            with transaction.atomic():  # as _create: the row and the job naming it together
                domain = inventory.record_domain(job.host, seen[0])
                Job.objects.filter(pk=job.pk).update(domain=domain)
            job.domain = domain
            return f"{domain.name} runs on {job.host.name}"
        if job.kind in Job.POWER and job.domain_id is not None:
            info = driver_for(job.domain.host.uri).domain(str(job.domain.uuid))
            running = info is not None and info.state in RUNNING_STATES
            if job.kind == Job.Kind.RESTART:
                # Booted again: a new process, so a new id (the row still has the one from before the job).
                if running and info.hv_id != job.domain.hv_id:
                    return f"{job.domain.name} runs again on {job.domain.host.name}"
            elif running == (job.kind == Job.Kind.START):
                return f"{job.domain.name} {'runs' if running else 'is off'} on {job.domain.host.name}"
    except DriverError:
        pass
    return ""
