"""The stats poller: per host one bulk stats call (in parallel threads), then one bulk database write, then one
live update per host that changed. A host that does not answer is marked offline with the error.
"""

import gc
import itertools
import operator
import zlib
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

from celery import current_app
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from balloonweb.bulk import update_rows
from balloonweb.live.publish import publish_many
from hosts.drivers import DomainInfo, DomainStats, DriverError, HostInfo, HostUnreachable, driver_for
from hosts.models import Host, queue_name

from . import inventory
from .clock import db_now
from .models import Domain, Job
from .samples import record_samples, sample_due

POLL_THREADS = 32
# A persistent config changed by hand (virsh setmaxmem --config) raises no event on a simulated host, and a poll
# reads configs only of new and booting domains: so each domain's config is also read again once in this many
# polls of its host group by this process (5 minutes at the 5 s interval), a few domains per poll.
CONFIG_REFRESH_POLLS = 60
_poll_numbers: dict[tuple, itertools.count] = {}  # per set of host groups polled together
HOST_FIELDS = ["status", "last_error", "last_seen", "status_changed", "total_kib", "cpus"]
POLLED_FIELDS = inventory.OBSERVED_FIELDS + inventory.CONFIG_FIELDS + inventory.STATS_FIELDS
# Fields whose change is worth a live update (cpu time and last_seen change on every poll).
SHOWN_FIELDS = ("host_id", "state", "memory_kib", "maxmem_kib", "actual_kib", "unused_kib", "available_kib", "hv_id", "vcpus")


@dataclass
class HostReading:
    host: Host
    info: HostInfo | None = None
    stats: list[DomainStats] = field(default_factory=list)
    configs: dict[str, DomainInfo] = field(default_factory=dict)  # of domains new to the poll, seen booting, or due
    error: DriverError | None = None


@dataclass
class PollReport:
    hosts: int = 0
    online: int = 0
    domains: int = 0
    changed: int = 0
    libvirt_s: float = 0.0
    database_s: float = 0.0
    publish_s: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def config_refresh_due(uuid: str, poll_number: int) -> bool:
    return zlib.crc32(uuid.encode()) % CONFIG_REFRESH_POLLS == poll_number % CONFIG_REFRESH_POLLS


def read_host(host: Host, present: dict[str, Domain], poll_number: int) -> HostReading:
    """All the hypervisor calls of one host: one bulk stats call, the persistent config of domains new to the
    database, of those seen booting (a boot takes the config, whoever changed it: virsh setmaxmem --config by
    hand, or a maxmem job whose host did not answer afterwards) and of those due a refresh (config_refresh_due),
    and the host's own figures when it was not online before (a host's memory and CPUs do not change while it
    runs)."""
    reading = HostReading(host)
    driver = driver_for(host.uri)
    try:
        if not host.is_online or not host.total_kib:
            reading.info = driver.host_info()
        reading.stats = driver.bulk_stats()
        for stats in reading.stats:
            known = present.get(stats.uuid)
            if known is None or inventory.started_again(known, host, stats) or config_refresh_due(stats.uuid, poll_number):
                info = driver.domain(stats.uuid)
                if info is not None:
                    reading.configs[stats.uuid] = info
    except DriverError as exc:
        reading.error = exc
    return reading


def read_hosts(hosts: list[Host], present: dict[str, Domain]) -> list[HostReading]:
    groups = tuple(sorted({host.queue_group for host in hosts}))
    poll_number = next(_poll_numbers.setdefault(groups, itertools.count()))
    with ThreadPoolExecutor(max_workers=min(POLL_THREADS, max(1, len(hosts)))) as pool:
        return list(pool.map(lambda h: read_host(h, present, poll_number), hosts))


_shown = operator.attrgetter(*SHOWN_FIELDS)
# What a chart draws as steps: a change here is sampled at once.
_balloon = operator.attrgetter("state", "memory_kib", "actual_kib")


def present_domains(hosts: list[Host]) -> dict[str, Domain]:
    """The domains the database has on these hosts (gone ones aside), by UUID. Unordered: the model's ordering
    would join the hosts to sort 10,000 rows that end in a dict."""
    return {str(d.uuid): d for d in Domain.objects.filter(host__in=hosts, state__in=_present_states()).order_by()}


@dataclass
class JobsAtWork:
    """What the jobs own while a poll writes (in_jobs_since)."""

    running: set[int] = field(default_factory=set)  # domains a job is changing: the poll writes their guest figures only
    ended: set[int] = field(default_factory=set)  # changed after the reads: the job's row stands until the next poll
    creating: set[tuple[int, str]] = field(default_factory=set)  # (host id, name): each job records its domain


def in_jobs_since(read_at) -> JobsAtWork:
    """The domains jobs are changing, or changed after `read_at` (when the hosts were read). A job writes what the
    hypervisor says after it, which an older reading must not overwrite: the host would count a resized domain at
    its old size, or a migrating one on its destination, until the next poll."""
    jobs = Job.objects.filter(
        Q(state=Job.State.RUNNING) | Q(state__in=Job.ENDED, finished__gte=read_at)
        | Q(kind=Job.Kind.CREATE, state=Job.State.QUEUED)
    ).values_list("kind", "state", "domain_id", "target_host_id", "params__name")
    at_work = JobsAtWork()
    for kind, state, domain_id, host_id, name in jobs:
        if domain_id is not None:
            (at_work.running if state == Job.State.RUNNING else at_work.ended).add(domain_id)
        if kind == Job.Kind.CREATE and state in Job.UNFINISHED:
            at_work.creating.add((host_id, name))
    at_work.ended -= at_work.running
    return at_work


def where_seen(readings: list[HostReading], present: dict[str, Domain]) -> dict[str, tuple[Host, DomainStats]]:
    """Each domain with the host it runs on. During a live migration both hosts list it (the destination paused,
    taking it in): it runs where it runs, else where the database has it."""
    seen: dict[str, tuple[Host, DomainStats]] = {}
    for reading in readings:
        for stats in reading.stats:
            uuid = str(stats.uuid)
            recorded = present[uuid].host_id if uuid in present else None
            if uuid not in seen or _rank(reading.host, stats, recorded) < _rank(*seen[uuid], recorded):
                seen[uuid] = (reading.host, stats)
    return seen


def _rank(host: Host, stats: DomainStats, recorded_host_id: int | None) -> tuple[bool, bool]:
    return stats.state not in ("running", "blocked"), host.pk != recorded_host_id


def write_readings(readings: list[HostReading], present: dict[str, Domain], read_at=None) -> tuple[list[tuple[str, object, dict]], int, int]:
    """One bulk write of everything read (`present`: present_domains of the hosts read, loaded before the
    reads; `read_at`: when the reads began); returns the live updates to send, the domains seen and changed."""
    now = timezone.now()
    answered = [r for r in readings if r.error is None]
    seen = where_seen(answered, present)
    at_work = in_jobs_since(read_at or now)
    answered_ids = {r.host.pk for r in answered}
    configs = {uuid: info for r in answered for uuid, info in r.configs.items()}
    existing = {uuid: d for uuid, d in present.items() if d.host_id in answered_ids}
    # Domains that arrived from a host not polled now, or came back after being gone: usually none.
    arrived = [uuid for uuid in seen if uuid not in existing]
    if arrived:
        existing.update((str(d.uuid), d) for d in Domain.objects.filter(uuid__in=arrived))
    changed: list[Domain] = []
    figures_only: list[Domain] = []  # domains a job is changing
    created: list[Domain] = []
    sampled: list[Domain] = []
    changed_by_host: dict[int, list[int]] = {}
    moved_from: dict[int, list[int]] = {}  # domains found on another host than the row says (moved outside BalloonWeb)
    for uuid, (host, stats) in seen.items():
        domain = existing.get(uuid)
        if domain is not None and domain.pk in at_work.ended:
            continue
        if domain is None:
            info = configs.get(uuid)
            if info is not None and (host.pk, info.name) not in at_work.creating:
                domain = inventory.new_domain(host, info, now)
                inventory.apply_observation(domain, host, stats, now)
                created.append(domain)
            continue
        before, balloon_before, last_poll = _shown(domain), _balloon(domain), domain.last_seen
        if domain.pk in at_work.running:
            inventory.apply_balloon_stats(domain, stats)
            figures_only.append(domain)
        else:
            inventory.apply_observation(domain, host, stats, now)
            if uuid in configs:  # seen booting, or due a refresh
                inventory.apply_config(domain, configs[uuid])
            changed.append(domain)
        if _shown(domain) != before:
            changed_by_host.setdefault(host.pk, []).append(domain.pk)
            if before[0] != domain.host_id and before[0] is not None:
                moved_from.setdefault(before[0], []).append(domain.pk)
        # The chart shows a moving balloon at once, and otherwise takes a sample now and then (see samples.py).
        if _balloon(domain) != balloon_before or sample_due(domain.pk, last_poll, now):
            sampled.append(domain)
    # A host that answers again after being offline (a restarted daemon) gets one cycle before its missing
    # domains count as gone: whoever restarted it may still be defining them again.
    returning = {r.host.pk for r in answered if r.host.status != Host.Status.ONLINE}
    for uuid, domain in existing.items():
        if uuid not in seen and domain.state != Domain.State.GONE and domain.host_id not in returning \
                and domain.pk not in at_work.running | at_work.ended:
            domain.state, domain.hv_id = Domain.State.GONE, None
            changed.append(domain)
            changed_by_host.setdefault(domain.host_id, []).append(domain.pk)

    hosts_changed = [r.host for r in readings if _apply_host(r, now)]
    with transaction.atomic():
        update_rows(changed, POLLED_FIELDS, unless_written_since=("job_wrote_at", read_at or now))
        if figures_only:
            update_rows(figures_only, inventory.STATS_FIELDS)
        Domain.objects.bulk_create(created, batch_size=2000)
        record_samples(sampled + created, now)  # the charts' history: one bulk insert
        update_rows([r.host for r in readings], HOST_FIELDS)
    for domain in created:
        changed_by_host.setdefault(domain.host_id, []).append(domain.pk)
    messages = [("host", host_id, {"type": "domains", "domains": ids}) for host_id, ids in changed_by_host.items()]
    # The old host's pages drop them, and a domain page listening there follows its domain (domains/consumers.py).
    messages += [("host", host_id, {"type": "domains", "domains": ids, "moved": ids}) for host_id, ids in moved_from.items()]
    # A host hint only when the host itself changed (its status): every domain page on a host listens to it,
    # and a host whose domains changed has said so above, per domain.
    for host in hosts_changed:
        messages.append(("host", host.pk, {"type": "host", "host": host.pk, "status": host.status}))
    # The fleet pages' bars move with the domains, and a host a domain left changed as much as the one it reached.
    teams = {h.pk: h.team_id for h in hosts_changed} | {
        r.host.pk: r.host.team_id for r in readings if r.host.pk in changed_by_host or r.host.pk in moved_from
    }
    left = [host_id for host_id in moved_from if host_id not in teams]  # polled by another group's poll, perhaps
    teams |= dict(Host.objects.filter(pk__in=left).values_list("pk", "team_id")) if left else {}
    fleet: dict[int | None, list[int]] = {}
    for host_id, team_id in teams.items():
        fleet.setdefault(team_id, []).append(host_id)
    # One hint per team and poll, whatever the number of hosts: every fleet page open gets each one.
    messages += [("fleet", team, {"type": "hosts", "hosts": ids}) for team, ids in fleet.items()]
    return messages, len(seen), sum(len(ids) for ids in changed_by_host.values())


def _present_states() -> list[str]:
    return [s for s in Domain.State.values if s != Domain.State.GONE]


def _apply_host(reading: HostReading, now) -> bool:
    """Update the host row from a reading; True if its status changed."""
    host = reading.host
    previous = host.status
    if reading.error is None:
        host.status, host.last_error, host.last_seen = Host.Status.ONLINE, "", now
        if reading.info is not None:
            host.total_kib, host.cpus = reading.info.total_kib, reading.info.cpus
    else:
        unreachable = isinstance(reading.error, HostUnreachable)
        host.status = Host.Status.OFFLINE if unreachable else Host.Status.ERROR
        detail = f" ({reading.error.detail})" if reading.error.detail else ""
        host.last_error = f"{reading.error.message}{detail}"
    if host.status != previous:
        host.status_changed = now
        return True
    return False


@contextmanager
def _cyclic_gc_paused():
    """A poll builds some 100,000 objects (stats, rows) that live through the cycle and are freed by reference
    counting at its end, leaving no cycles behind. The cyclic collector, started by allocation counts, would walk
    them and the whole heap several times per poll (0.2-0.4 s of a 10,000-domain cycle) to free nothing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def poll_hosts(hosts: list[Host]) -> PollReport:
    report = PollReport(hosts=len(hosts))
    with _cyclic_gc_paused():
        started = time.perf_counter()
        # Before the rows are loaded: a job that ends while they load wrote after them, and must count as such.
        read_at = db_now()  # compared with the jobs' stamps, made on other machines (clock.py)
        # Loaded before the reads, so that only domains new to these hosts have their config read.
        present = present_domains(hosts)
        report.database_s = time.perf_counter() - started
        started = time.perf_counter()
        readings = read_hosts(hosts, present)
        report.libvirt_s = time.perf_counter() - started
        started = time.perf_counter()
        messages, report.domains, report.changed = write_readings(readings, present, read_at)
        report.database_s += time.perf_counter() - started
        started = time.perf_counter()
        publish_many(messages)
        report.publish_s = time.perf_counter() - started
    report.online = sum(r.error is None for r in readings)
    return report


def poll_fleet(queue_group: str | None = None) -> PollReport:
    """Poll the hosts of one queue group (all hosts when None)."""
    every_host = list(Host.objects.all())
    inventory.release_removed_hosts(every_host)
    return poll_hosts([host for host in every_host if queue_group is None or host.queue_group == queue_group])


def dispatch_polls() -> list[str]:
    """One poll task per host group, on that group's queue, so that each group is polled near its hosts."""
    return dispatch_per_group("domains.tasks.poll_group")


def dispatch_per_group(task: str) -> list[str]:
    """Send `task` once per host group, with the group, on that group's poll queue (its workers near its hosts)."""
    groups = sorted(set(Host.objects.values_list("queue_group", flat=True)))
    for group in groups:
        current_app.send_task(task, args=[group], queue=queue_name("poll", group))
    return groups
