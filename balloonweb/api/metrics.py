"""Prometheus metrics at /metrics, read from the database in a fixed number of queries per scrape.

The poll cycle runs in a Celery worker; its report reaches this (web) process through the shared cache: a
`task_postrun` handler stores the report of each `poll_group` task under a small key.
"""

import ipaddress
import logging
import os
import secrets
import time
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Q, Sum
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from balloonweb.access.middleware import client_ip, trusted_proxy
from domains.autoscaler.models import Decision
from domains.models import Domain, Job
from hosts.models import RUNNING_STATES, Host

log = logging.getLogger(__name__)

POLL_TASK = "domains.tasks.poll_group"
POLL_KEY = "api:poll:{}"
POLL_PHASES = ("libvirt", "database", "publish")
KIB = 1024
LOOPBACK = "127.0.0.0/8,::1/128"
DECISION_WINDOW_S = 3600


# -- the poll report ------------------------------------------------------------------------------------------


def connect_poll_signal() -> None:
    from celery.signals import task_postrun

    task_postrun.connect(store_poll_report, weak=False, dispatch_uid="api.store_poll_report")


def store_poll_report(sender=None, task=None, args=None, retval=None, state=None, **_) -> None:
    if getattr(task, "name", None) != POLL_TASK or state != "SUCCESS" or not isinstance(retval, dict):
        return
    group = (args or [""])[0] or ""
    try:
        cache.set(POLL_KEY.format(group), {**retval, "at": time.time()}, timeout=24 * 3600)
    except Exception:  # noqa: BLE001 - metrics must never fail the poll
        log.warning("poll report not stored for /metrics", exc_info=True)


# -- the collector --------------------------------------------------------------------------------------------


def _gauge(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"balloonweb_{name}", documentation, labels=labels)


class FleetCollector:
    """Hosts, domains, jobs, autoscaler decisions and the poll cycle; six queries and one cache read, whatever the
    fleet's size."""

    def collect(self):
        yield from self._hosts()
        yield from self._domains()
        yield from self._jobs()
        yield from self._decisions()
        yield from self._poll()

    def _hosts(self):
        running = Q(domains__state__in=RUNNING_STATES)
        hosts = Host.objects.annotate(used=Sum("domains__memory_kib", filter=running), n=Count("domains", filter=running))
        total = _gauge("host_memory_total_bytes", "Memory the hypervisor reports", ["host"])
        capacity = _gauge("host_memory_capacity_bytes", "Memory the host may hand out (capacity, else total)", ["host"])
        reserved = _gauge("host_memory_reserved_bytes", "Memory kept for the host itself", ["host"])
        used = _gauge("host_memory_used_bytes", "Current memory of the host's running domains", ["host"])
        domains = _gauge("host_running_domains", "Running domains on the host", ["host"])
        up = _gauge("host_up", "1 when the host answered its last poll", ["host", "status"])
        maintenance = _gauge("host_maintenance", "1 while the host is in maintenance (it takes no domains)", ["host"])
        for host in hosts.values("name", "status", "total_kib", "capacity_kib", "reserved_kib", "used", "n", "maintenance"):
            name = [host["name"]]
            total.add_metric(name, host["total_kib"] * KIB)
            capacity.add_metric(name, (host["capacity_kib"] or host["total_kib"]) * KIB)
            reserved.add_metric(name, host["reserved_kib"] * KIB)
            used.add_metric(name, (host["used"] or 0) * KIB)
            domains.add_metric(name, host["n"])
            up.add_metric([host["name"], host["status"]], 1 if host["status"] == Host.Status.ONLINE else 0)
            maintenance.add_metric(name, 1 if host["maintenance"] else 0)
        yield from (total, capacity, reserved, used, domains, up, maintenance)

    def _domains(self):
        labels = ["domain", "host", "uuid"]
        families = {
            "memory_kib": _gauge("domain_memory_target_bytes", "Balloon target the hypervisor holds", labels),
            "actual_kib": _gauge("domain_memory_current_bytes", "Memory the guest has now (balloon actual)", labels),
            "maxmem_kib": _gauge("domain_memory_max_bytes", "Live maximum memory", labels),
            "floor_kib": _gauge("domain_memory_floor_bytes", "Floor below which nothing shrinks the domain", labels),
            "unused_kib": _gauge("domain_balloon_unused_bytes", "Memory the guest leaves unused", labels),
            "available_kib": _gauge("domain_balloon_available_bytes", "Memory the guest sees", labels),
            "usable_kib": _gauge("domain_balloon_usable_bytes", "Memory the guest could use without swapping", labels),
            "rss_kib": _gauge("domain_balloon_rss_bytes", "Resident memory of the guest's process on the host", labels),
        }
        running = _gauge("domain_running", "1 when the domain runs (running, blocked or paused)", labels + ["state"])
        stale = _gauge("domain_stats_stale", "1 when the balloon stats are older than the last poll", labels)
        rows = Domain.objects.present().values_list("name", "host__name", "uuid", "state", "stats_stale", *families)
        for name, host, uuid, state, is_stale, *values in rows:
            key = [name, host, str(uuid)]
            for family, value in zip(families.values(), values):
                if value is not None:
                    family.add_metric(key, value * KIB)
            running.add_metric(key + [state], 1 if state in RUNNING_STATES else 0)
            stale.add_metric(key, 1 if is_stale else 0)
        yield from families.values()
        yield from (running, stale)

    def _jobs(self):
        jobs = _gauge("jobs", "Jobs by kind and state", ["kind", "state"])
        # The autoscaler's applied decisions are ordinary jobs with the autoscaler as actor.
        autoscaler = _gauge("autoscaler_jobs", "Jobs the autoscaler started, by kind and state", ["kind", "state"])
        counts = {(kind, state): [0, 0] for kind in Job.Kind.values for state in Job.State.values}
        for row in Job.objects.order_by().values("kind", "state", "actor_kind").annotate(n=Count("id")):
            count = counts.setdefault((row["kind"], row["state"]), [0, 0])
            count[0] += row["n"]
            if row["actor_kind"] == "autoscaler":
                count[1] += row["n"]
        for (kind, state), (n, by_autoscaler) in counts.items():
            jobs.add_metric([kind, state], n)
            autoscaler.add_metric([kind, state], by_autoscaler)
        yield from (jobs, autoscaler)

    def _decisions(self):
        # The last hour's decisions, not all of them: the table grows every cycle, a scrape must not.
        since = timezone.now() - timedelta(seconds=DECISION_WINDOW_S)
        decisions = _gauge("autoscaler_decisions_last_hour", "Autoscaler decisions of the last hour, by step and state",
                           ["step", "state"])
        rows = Decision.objects.filter(at__gte=since).order_by().values("step_kind", "state").annotate(n=Count("id"))
        for row in rows:
            decisions.add_metric([row["step_kind"] or "none", row["state"]], row["n"])
        yield decisions

    def _poll(self):
        groups = sorted(set(Host.objects.order_by().values_list("queue_group", flat=True).distinct()))
        try:
            reports = cache.get_many([POLL_KEY.format(group) for group in groups])
        except Exception:  # noqa: BLE001 - a scrape without poll figures beats a failed scrape
            log.warning("poll reports not read for /metrics", exc_info=True)
            reports = {}
        duration = _gauge("poll_duration_seconds", "Duration of the last poll cycle, by phase", ["group", "phase"])
        last = _gauge("poll_last_timestamp_seconds", "When the last poll cycle ended", ["group"])
        counted = _gauge("poll_domains", "Domains seen by the last poll cycle", ["group"])
        for group in groups:
            report = reports.get(POLL_KEY.format(group))
            if not report:
                continue
            for phase in POLL_PHASES:
                duration.add_metric([group, phase], report.get(f"{phase}_s", 0.0))
            duration.add_metric([group, "total"], sum(report.get(f"{phase}_s", 0.0) for phase in POLL_PHASES))
            last.add_metric([group], report["at"])
            counted.add_metric([group], report.get("domains", 0))
        yield from (duration, last, counted)


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(FleetCollector())


# -- access ---------------------------------------------------------------------------------------------------


def _setting(name: str) -> str:
    return str(getattr(settings, name, None) or os.environ.get(name, "")).strip()


def _networks() -> list:
    text = _setting("METRICS_ALLOWED_NETWORKS")
    if not text and not _setting("METRICS_TOKEN"):
        text = LOOPBACK  # nothing configured: this machine only
    return [ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()]


def refusal(request) -> HttpResponse | None:
    """METRICS_TOKEN (a bearer token) and METRICS_ALLOWED_NETWORKS (CIDRs): each one that is set must be met."""
    token = _setting("METRICS_TOKEN")
    if token:
        given = request.headers.get("Authorization", "")
        if not secrets.compare_digest(given.encode(), f"Bearer {token}".encode()):
            response = HttpResponse("metrics need `Authorization: Bearer <METRICS_TOKEN>`\n", status=401, content_type="text/plain")
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    networks = _networks()
    if networks and not _setting("METRICS_ALLOWED_NETWORKS") and "HTTP_X_FORWARDED_FOR" in request.META \
            and not trusted_proxy(request.META.get("REMOTE_ADDR", "")):
        # "This machine only", but through a proxy TRUSTED_PROXIES does not name: every client would look local.
        return HttpResponse(
            "metrics are served to this machine only, and this request came through a proxy: name it in "
            "TRUSTED_PROXIES, or set METRICS_ALLOWED_NETWORKS or METRICS_TOKEN\n", status=403, content_type="text/plain",
        )
    if networks:
        try:
            # Behind a trusted proxy the peer is the proxy (127.0.0.1 in docs/deploy.md): judge the client.
            address = ipaddress.ip_address(client_ip(request.META) or "")
        except ValueError:
            address = None
        if address is None or not any(address in network for network in networks if network.version == address.version):
            return HttpResponse("metrics are not served to this address (METRICS_ALLOWED_NETWORKS)\n", status=403, content_type="text/plain")
    return None


@require_GET
def metrics_view(request):
    refused = refusal(request)
    if refused is not None:
        return refused
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
