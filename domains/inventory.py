"""What the hypervisors say, written into the database: one domain after a job, or a whole host per poll."""

from django.conf import settings

from hosts.drivers import DomainInfo, DomainStats, forget_hosts_except
from hosts.drivers.freshness import balloon_stats_stale
from hosts.models import RUNNING_STATES, Host

from .clock import db_now
from .models import Domain

OBSERVED_FIELDS = ["host", "name", "hv_id", "state", "vcpus", "memory_kib", "maxmem_kib", "cpu_time_ns", "last_seen", "booted_at"]
CONFIG_FIELDS = ["config_memory_kib", "config_maxmem_kib"]
STATS_FIELDS = ["actual_kib", "unused_kib", "available_kib", "usable_kib", "rss_kib", "stats_last_update", "stats_stale"]


def release_removed_hosts(hosts: list[Host] | None = None) -> list[str]:
    """Let this process go of its connections to hosts removed from BalloonWeb, whose keepalives would otherwise
    ping them until it ends. Every poll and every job calls it: a worker may serve only jobs. Returns their URIs."""
    uris = [host.uri for host in hosts] if hosts is not None else Host.objects.values_list("uri", flat=True)
    return forget_hosts_except(uris)


def default_floor_kib(memory_kib: int) -> int:
    return min(int(settings.DEFAULT_FLOOR_MIB) * 1024, memory_kib)


def started_again(domain: Domain, host: Host, seen: DomainInfo | DomainStats) -> bool:
    """Whether the domain has booted since the row was last written: it runs now and did not, or it runs on the
    same host as a new process (another hypervisor id, or its CPU time went back). A migration is not a boot:
    the guest and its balloon travel with it, though its id and CPU time start afresh on the new host."""
    if seen.state not in RUNNING_STATES:
        return False
    if domain.state not in RUNNING_STATES:
        return True
    same_host = domain.host_id == host.pk
    return same_host and (seen.hv_id != domain.hv_id or seen.cpu_time_ns < domain.cpu_time_ns)


def apply_observation(domain: Domain, host: Host, seen: DomainInfo | DomainStats, now) -> None:
    """Copy what a driver reported onto the row (not saved)."""
    if started_again(domain, host, seen):
        domain.booted_at = now
    domain.host = host
    domain.name = seen.name
    domain.hv_id = seen.hv_id
    domain.state = seen.state
    domain.vcpus = seen.vcpus
    domain.memory_kib = seen.memory_kib
    domain.maxmem_kib = seen.maxmem_kib
    domain.cpu_time_ns = seen.cpu_time_ns
    domain.last_seen = now
    if isinstance(seen, DomainInfo):
        apply_config(domain, seen)
    else:
        apply_balloon_stats(domain, seen)


def apply_config(domain: Domain, info: DomainInfo) -> None:
    domain.config_memory_kib = info.config_memory_kib
    domain.config_maxmem_kib = info.config_maxmem_kib


def apply_balloon_stats(domain: Domain, seen: DomainStats) -> None:
    """The guest's own figures only (STATS_FIELDS), not saved: all a poll writes of a domain a job is changing."""
    domain.stats_stale = balloon_stats_stale(domain.stats_last_update, seen.last_update)
    domain.actual_kib = seen.actual_kib
    domain.unused_kib = seen.unused_kib
    domain.available_kib = seen.available_kib
    domain.usable_kib = seen.usable_kib
    domain.rss_kib = seen.rss_kib
    domain.stats_last_update = seen.last_update


def new_domain(host: Host, info: DomainInfo, now) -> Domain:
    domain = Domain(uuid=info.uuid, floor_kib=default_floor_kib(info.config_memory_kib or info.memory_kib))
    apply_observation(domain, host, info, now)
    return domain


def record_domain(host: Host, info: DomainInfo) -> Domain:
    """Upsert one domain from a fresh DomainInfo (after a job); keyed by UUID, so a moved domain keeps its row."""
    now = db_now()  # job_wrote_at, which the poller compares with when it read the host (clock.py)
    domain = Domain.objects.filter(uuid=info.uuid).first()
    if domain is None:
        domain = new_domain(host, info, now)
        domain.job_wrote_at = now
        domain.save()
        return domain
    apply_observation(domain, host, info, now)
    domain.job_wrote_at = now
    domain.save(update_fields=OBSERVED_FIELDS + CONFIG_FIELDS + ["job_wrote_at"])
    return domain


def mark_gone(domain: Domain) -> None:
    domain.state = Domain.State.GONE
    domain.hv_id = None
    domain.save(update_fields=["state", "hv_id"])
