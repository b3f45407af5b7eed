"""The pages: thin views over the models (reading) and domains.services (changing).

Permissions come only from balloonweb.access.rules: outsiders get 404, members without the right 403.
Live regions are refetched by htmx after a hint over the WebSocket; a request with the HX-Request header gets
the region's partial template, any other request the whole page, so every region also works without JS.
"""

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, F, FloatField, IntegerField, Model, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Cast, Coalesce, NullIf
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from balloonweb.access import rules
from balloonweb.access.actors import Actor
from balloonweb.access.models import Team
from balloonweb.csv_download import csv_download
from hosts.models import RUNNING_STATES, Host
from hosts.units import format_mib as mib
from hosts.units import mib as mib_of
from hosts.units import format_bound as bound
from hosts.units import typed_size

from . import host_registry, maintenance, samples, services
from .autoscaler.models import Decision
from .models import Domain, Job

DOMAINS_PAGE_SIZE = 100
FLEET_PAGE_SIZE = 60  # host cards: whole rows of 2, 3 or 4
FLEET_FILTER_FROM = 8  # hosts; a smaller fleet fits on a screen without a filter
JOBS_PAGE_SIZE = 50
RECENT_JOBS = 10
# Chart ranges offered on the domain page, in seconds; the first hour is the default.
CHART_RANGES = [(900, "15 min"), (3600, "1 hour"), (6 * 3600, "6 hours"), (86400, "24 hours"), (7 * 86400, "7 days")]
DEFAULT_CHART_RANGE = 3600

# The host page's sortable columns: query parameter -> ordering expression.
DOMAIN_SORTS = {
    "name": F("name"),
    "id": F("hv_id"),
    "memory": F("memory_kib"),
    "maxmem": F("maxmem_kib"),
    "vcpus": F("vcpus"),
    "state": F("state"),
    "time": F("cpu_time_ns"),
    "actual": F("actual_kib"),
    "used": F("used"),
    "unused": F("unused_kib"),
    "free": F("free_share"),
}
# The domains page sorts by host too.
FLEET_DOMAIN_SORTS = {**DOMAIN_SORTS, "host": F("host__name")}


# -- helpers --------------------------------------------------------------------------------------------------


def actor_of(request: HttpRequest) -> Actor:
    """The request's actor; RequestContextMiddleware adds the request id and client address when installed."""
    actor = getattr(request, "actor", None)
    if actor is None:
        # Kept on the request, so that the roles it looks up are read once per request.
        actor = request.actor = Actor.for_user(request.user)
    return actor


def get_visible(request: HttpRequest, queryset: QuerySet, pk: int) -> Model:
    """One object the user may view: 404 when it does not exist or the user is outside its team."""
    obj = get_object_or_404(queryset, pk=pk)
    try:
        rules.require(actor_of(request), "view", obj)
    except rules.NotFound as exc:
        raise Http404(str(exc)) from exc
    except rules.Forbidden as exc:
        raise PermissionDenied(str(exc)) from exc
    return obj


def refusal(request: HttpRequest, exc: services.ServiceError) -> None:
    """A refused plain-form action: outsiders get 404 and members without the right 403, as everywhere; other
    refusals become a message on the page the form redirects back to."""
    if exc.status == 404:
        raise Http404(exc.message)
    if exc.status == 403:
        raise PermissionDenied(exc.message)
    messages.error(request, exc.message)


def may(actor: Actor, action: str, obj: Model) -> bool:
    """Whether to offer a control; the service checks again when it is used."""
    try:
        rules.require(actor, action, obj)
    except (rules.NotFound, rules.Forbidden):
        return False
    return True


def with_cancel_offered(actor: Actor, jobs) -> list[Job]:
    """The jobs, each knowing whether to offer its Cancel (or Stop) button to this person."""
    jobs = list(jobs)
    for job in jobs:
        job.may_cancel = may(actor, "cancel_job", job)
    return jobs


def memory_bar(capacity_kib: int, reserved_kib: int, running_kib: int) -> dict:
    """The fleet page's bar: running domains, the host's reserve and what is left, as widths in %."""
    capacity = max(capacity_kib, 1)
    free = max(0, capacity_kib - reserved_kib - running_kib)
    running_pct = min(100.0, running_kib * 100 / capacity)
    reserved_pct = min(100.0 - running_pct, reserved_kib * 100 / capacity)
    return {
        "running_kib": running_kib, "reserved_kib": reserved_kib, "free_kib": free, "capacity_kib": capacity_kib,
        "running_pct": round(running_pct, 2), "reserved_pct": round(reserved_pct, 2),
        "free_pct": round(max(0.0, 100.0 - running_pct - reserved_pct), 2),
        "overbooked": running_kib + reserved_kib > capacity_kib,
        "over_kib": max(0, running_kib + reserved_kib - capacity_kib),
    }


def query_without(request: HttpRequest, *keys: str) -> str:
    """The current query string less `keys`, as a prefix for links that set them: the pager's links keep the
    filters and the sort, a column's sort link keeps the filters."""
    query = request.GET.copy()
    for key in keys:
        query.pop(key, None)
    return f"{query.urlencode()}&" if query else ""


def partial_or_page(request: HttpRequest, page: str, partial: str, context: dict, status: int = 200) -> HttpResponse:
    return render(request, partial if request.htmx else page, context, status=status)


# -- fleet ----------------------------------------------------------------------------------------------------


def fleet_hosts(actor: Actor) -> QuerySet:
    """Every visible host with its running memory, domain counts and the autoscaler's steps waiting for a person
    (recommend mode), in one query whatever the fleet's size."""
    running = Q(domains__state__in=RUNNING_STATES)
    waiting = (
        Decision.objects.filter(host=OuterRef("pk"), state=Decision.State.RECOMMENDED)
        .order_by().values("host").annotate(count=Count("pk")).values("count")[:1]
    )
    return (
        rules.restrict(Host.objects.select_related("team"), actor, "view")
        .annotate(
            running_kib=Coalesce(Sum("domains__memory_kib", filter=running), 0),
            running_count=Count("domains", filter=running),
            domain_count=Count("domains", filter=~Q(domains__state=Domain.State.GONE)),
            steps_waiting=Coalesce(Subquery(waiting, output_field=IntegerField()), 0),
        )
        .order_by("name")
    )


def host_bar(host: Host) -> dict:
    """A host's bar, from a host of fleet_hosts (which sums its running memory)."""
    return memory_bar(host.capacity_kib or host.total_kib, host.reserved_kib, host.running_kib)


# The fleet page's host filter: status -> whether a host shows.
HOST_STATUSES = {
    "online": lambda host: host.is_online,
    "not-online": lambda host: not host.is_online,
    "maintenance": lambda host: host.maintenance,
}
# The fleet page's host orders: key -> (sort key of a row, largest first).
HOST_ORDERS = {
    "name": (lambda row: row["host"].name, False),
    "free": (lambda row: (row["bar"]["free_kib"], row["host"].name), True),
    "used": (lambda row: (row["bar"]["running_pct"] + row["bar"]["reserved_pct"], row["host"].name), True),
}


class HostFilter(forms.Form):
    name = forms.CharField(max_length=100, required=False, strip=True)
    status = forms.ChoiceField(
        choices=[("", "any status"), ("online", "online"), ("not-online", "offline or in error"), ("maintenance", "in maintenance")],
        required=False,
    )
    order = forms.ChoiceField(
        choices=[("name", "name"), ("free", "most free memory"), ("used", "fullest")], required=False,
    )


@login_required
def fleet(request: HttpRequest) -> HttpResponse:
    rows = []
    totals = {"capacity_kib": 0, "reserved_kib": 0, "running_kib": 0, "free_kib": 0, "running": 0, "domains": 0, "online": 0,
              "closed_free_kib": 0}
    for host in fleet_hosts(actor_of(request)):
        bar = host_bar(host)
        rows.append({"host": host, "bar": bar})
        totals["capacity_kib"] += bar["capacity_kib"]
        totals["reserved_kib"] += host.reserved_kib
        totals["running_kib"] += host.running_kib
        totals["free_kib"] += bar["free_kib"]
        totals["running"] += host.running_count
        totals["domains"] += host.domain_count
        totals["online"] += host.is_online
        if host.maintenance or not host.is_online:
            totals["closed_free_kib"] += bar["free_kib"]
    # The totals are the whole visible fleet's; the filter and the pages choose which cards show.
    form = HostFilter(request.GET or None)
    shown = rows
    if form.is_valid():
        wanted = form.cleaned_data
        if wanted["name"]:
            shown = [row for row in shown if wanted["name"].lower() in row["host"].name.lower()]
        if wanted["status"]:
            shown = [row for row in shown if HOST_STATUSES[wanted["status"]](row["host"])]
        key, largest_first = HOST_ORDERS[wanted["order"] or "name"]
        shown = sorted(shown, key=key, reverse=largest_first)
    context = {
        "nav": "fleet", "hosts_in_fleet": len(rows), "page": Paginator(shown, FLEET_PAGE_SIZE).get_page(request.GET.get("page")),
        "filtered": len(shown) != len(rows), "totals": totals, "form": form if form.is_bound else HostFilter(),
        "total_bar": memory_bar(totals["capacity_kib"], totals["reserved_kib"], totals["running_kib"]),
        "query": request.GET.urlencode(), "base_query": query_without(request, "page"),
        "offer_filter": len(rows) > FLEET_FILTER_FROM or bool(request.GET),
        "owner": actor_of(request).is_privileged,
    }
    return partial_or_page(request, "pages/fleet.html", "pages/_fleet_hosts.html", context)


# -- host -----------------------------------------------------------------------------------------------------


def host_domains_context(request: HttpRequest, host: Host) -> dict:
    table = domains_table(request, Domain.objects.present().filter(host=host), DOMAIN_SORTS)
    row = fleet_hosts(actor_of(request)).get(pk=host.pk)
    return {
        **table, "nav": "fleet", "host": host, "columns": HOST_COLUMNS, "bar": host_bar(row),
        "running_here": row.running_count,
    }


@login_required
def host(request: HttpRequest, host_id: int) -> HttpResponse:
    host = get_visible(request, Host.objects.select_related("team"), host_id)
    if request.htmx:
        return render(request, "pages/_host_domains.html", host_domains_context(request, host))
    return host_page(request, host)


def host_page(request: HttpRequest, host: Host, *, status: int = 200, **settings_form) -> HttpResponse:
    """The whole host page; `settings_form` (values, settings_error) shows a refused Settings form as it was typed."""
    context = host_domains_context(request, host)
    may_manage = may(actor_of(request), "manage_host", host)
    # What starting maintenance would do is loaded when its section is opened (host_part); without JavaScript, a
    # link asks for it with the page.
    wanted = may_manage and request.GET.get("evacuation") == "1"
    evacuation = maintenance.preview(actor_of(request), host) if wanted else None
    return render(request, "pages/host.html", {
        **context, "may_manage": may_manage, "evacuation": evacuation, "values": host_values(host),
        "owner": actor_of(request).is_privileged,
        "teams": Team.objects.order_by("name").values_list("name", flat=True), **settings_form,
    }, status=status)


@login_required
@require_POST
def host_maintenance(request: HttpRequest, host_id: int, action: str) -> HttpResponse:
    """Start or end a host's maintenance (domains/maintenance.py), and say what it did."""
    host = get_visible(request, Host.objects.select_related("team"), host_id)
    try:
        if action == "start":
            done = maintenance.start(actor_of(request), host)
            if done.already:
                messages.success(request, f"{host.name} was in maintenance already; for the domains still here: {done.queued()}.")
            else:
                messages.success(request, f"{host.name} is in maintenance: {done.queued()}.")
            for domain, reason in done.staying:
                messages.warning(request, f"{domain.name} stays: {reason}")
        else:
            maintenance.end(actor_of(request), host)
            messages.success(request, f"{host.name} takes domains again.")
    except services.ServiceError as exc:
        refusal(request, exc)
    return redirect("host", host.pk)


# A host's settings, as typed: host_registry parses and judges them (the same for the API and the command line).
HOST_FORM_FIELDS = ("name", "uri", *host_registry.SETTINGS)


def host_values(host: Host | None) -> dict:
    """The host forms' values for a host (or a new one's defaults), as people type them: sizes in MiB."""
    if host is None:
        return {"reserved": typed_size(host_registry.DEFAULT_RESERVE_KIB)}
    return {
        "team": host.team.name if host.team else "", "reserved": typed_size(host.reserved_kib),
        "capacity": "" if host.capacity_kib is None else typed_size(host.capacity_kib), "queue_group": host.queue_group,
    }


@login_required
def host_add(request: HttpRequest) -> HttpResponse:
    """The fleet owner registers a hypervisor."""
    actor = actor_of(request)
    values, error, status = host_values(None), "", 200
    if request.method == "POST":
        values = {field: request.POST.get(field, "") for field in HOST_FORM_FIELDS}
        try:
            settings_typed = {field: values[field] for field in host_registry.SETTINGS}
            host = host_registry.add_host(actor, values["name"], values["uri"], **settings_typed)
        except services.Forbidden as exc:  # audited by add_host
            raise PermissionDenied(exc.message) from exc
        except services.ServiceError as exc:
            error, status = exc.message, exc.status
        else:
            messages.success(request, f"{host.name} added: BalloonWeb connects to it at its next poll, within {settings.POLL_INTERVAL:.0f} s.")
            return redirect("host", host.pk)
    elif not actor.is_privileged:
        raise PermissionDenied("only a superuser adds hosts: hosts are the fleet owner's to give to teams")
    teams = Team.objects.order_by("name").values_list("name", flat=True)
    return render(request, "pages/host_add.html", {"nav": "fleet", "values": values, "error": error, "teams": teams}, status=status)


@login_required
@require_POST
def host_change(request: HttpRequest, host_id: int, action: str) -> HttpResponse:
    """Save a host's settings, or remove it."""
    host = get_visible(request, Host.objects.select_related("team"), host_id)
    try:
        if action == "remove":
            messages.success(request, host_registry.remove_host(actor_of(request), host) + ".")
            return redirect("fleet")
        # Only the fields the page showed: a team admin's form has no team or queue group.
        changes = {field: request.POST[field] for field in host_registry.SETTINGS if field in request.POST}
        host_registry.change_host(actor_of(request), host, **changes)
        messages.success(request, f"{host.name}'s settings saved.")
    except services.ServiceError as exc:
        if action == "remove" or exc.status in (403, 404):
            refusal(request, exc)
        else:  # the form again, open, as it was typed, with what was wrong
            host.refresh_from_db()
            return host_page(request, host, status=exc.status, values={**host_values(host), **changes},
                             settings_error=exc.message)
    return redirect(f"{reverse('host', args=[host.pk])}#settings")


@login_required
def host_part(request: HttpRequest, host_id: int, part: str) -> HttpResponse:
    """One part of the host page loaded on its own: a live region besides its domains (the autoscaler's plan, the
    history), or the maintenance preview when its section is opened."""
    host = get_visible(request, Host.objects.select_related("team"), host_id)
    if part == "evacuation":
        # What starting maintenance would do now, for those who may start it.
        if not may(actor_of(request), "manage_host", host):
            raise PermissionDenied(f"only an admin of {host.name}'s team may put it in maintenance")
        return render(request, "pages/_evacuation.html", {"host": host, "evacuation": maintenance.preview(actor_of(request), host)})
    templates = {"autoscaler": "autoscaler/_host_part.html", "history": "pages/_host_history.html"}
    if part not in templates:
        raise Http404("no such part of the page")
    return render(request, templates[part], {"host": host})


# (query key, heading, numeric) in `xm list` order, then the balloon figures.
HOST_COLUMNS = [
    ("name", "Name", False), ("id", "ID", True), ("memory", "Mem (MiB)", True), ("maxmem", "MaxMem (MiB)", True),
    ("vcpus", "VCPUs", True), ("state", "State", False), ("time", "Time (s)", True),
    ("actual", "Actual (MiB)", True), ("used", "Used (MiB)", True), ("unused", "Unused (MiB)", True),
    ("free", "Free", True),
]
FLEET_DOMAIN_COLUMNS = [HOST_COLUMNS[0], ("host", "Host", False), *HOST_COLUMNS[1:]]


def sorted_domains(request: HttpRequest, domains: QuerySet, sorts: dict) -> tuple[QuerySet, str, bool]:
    """`domains` with their balloon figures, sorted by the request's column: (queryset, column, descending)."""
    sort = request.GET.get("sort", "name")
    if sort not in sorts:
        sort = "name"
    descending = request.GET.get("dir") == "desc"
    order = sorts[sort].desc(nulls_last=True) if descending else sorts[sort].asc(nulls_last=True)
    domains = domains.annotate(
        used=F("available_kib") - F("unused_kib"),
        # The guest's free share, what ballooning works from: who has memory to give back, who lacks it.
        free_share=Cast("unused_kib", FloatField()) * 100 / NullIf(Cast("available_kib", FloatField()), 0.0),
    ).order_by(order, "name", "pk")
    return domains, sort, descending


def domains_table(request: HttpRequest, domains: QuerySet, sorts: dict) -> dict:
    """A page of `domains` sorted by the request's column (the host page and the domains page), as context."""
    domains, sort, descending = sorted_domains(request, domains, sorts)
    return {
        "page": Paginator(domains, DOMAINS_PAGE_SIZE).get_page(request.GET.get("page")),
        "sort": sort, "dir": "desc" if descending else "asc",
        "base_query": query_without(request, "page"), "sort_query": query_without(request, "page", "sort", "dir"),
    }


# -- domains, across the fleet (`xm list` of every host one may see) -------------------------------------------


# The state filter's groups besides the single states.
UP, NOT_RUNNING, AWAITING_RESTART = "up", "down", "restart"


class DomainFilter(forms.Form):
    name = forms.CharField(max_length=200, required=False, strip=True)
    host = forms.CharField(max_length=100, required=False)
    state = forms.ChoiceField(
        choices=[("", "any state"), (UP, "up (r, b or p)"), (NOT_RUNNING, "not running"),
                 (AWAITING_RESTART, "running, new maxmem at restart")]
        + [choice for choice in Domain.State.choices if choice[0] != Domain.State.GONE],
        required=False,
    )


def filtered_domains(request: HttpRequest) -> tuple[QuerySet, DomainFilter]:
    """The visible domains the request's filter selects (all of them when the filter is not valid)."""
    selected = rules.restrict(Domain.objects.present().select_related("host"), actor_of(request), "view")
    form = DomainFilter(request.GET or None)
    if form.is_valid():
        wanted = form.cleaned_data
        if wanted["name"]:
            selected = selected.filter(name__icontains=wanted["name"])
        if wanted["host"]:
            selected = selected.filter(host__name=wanted["host"])
        if wanted["state"] == UP:
            selected = selected.filter(state__in=RUNNING_STATES)
        elif wanted["state"] == NOT_RUNNING:
            selected = selected.exclude(state__in=RUNNING_STATES)
        elif wanted["state"] == AWAITING_RESTART:
            selected = selected.awaiting_restart()
        elif wanted["state"]:
            selected = selected.filter(state=wanted["state"])
    return selected, form


@login_required
def domains(request: HttpRequest) -> HttpResponse:
    selected, form = filtered_domains(request)
    hosts = rules.restrict(Host.objects.all(), actor_of(request), "view").order_by("name").values_list("name", flat=True)
    context = {
        **domains_table(request, selected, FLEET_DOMAIN_SORTS), "nav": "domains", "columns": FLEET_DOMAIN_COLUMNS,
        "form": form if form.is_bound else DomainFilter(), "hosts": hosts, "query": request.GET.urlencode(),
    }
    return partial_or_page(request, "pages/domains.html", "pages/_domains_list.html", context)


# The CSV's columns: (heading, value of a row of sorted_domains). Sizes in MiB, as `xm list` gives them.
CSV_COLUMNS = [
    ("name", lambda d: d.name), ("host", lambda d: d.host.name), ("uuid", lambda d: d.uuid), ("id", lambda d: d.hv_id),
    ("state", lambda d: d.state), ("vcpus", lambda d: d.vcpus), ("memory_mib", lambda d: mib_of(d.memory_kib)),
    ("maxmem_mib", lambda d: mib_of(d.maxmem_kib)), ("floor_mib", lambda d: mib_of(d.floor_kib)),
    ("actual_mib", lambda d: mib_of(d.actual_kib)), ("used_mib", lambda d: mib_of(d.used)),
    ("unused_mib", lambda d: mib_of(d.unused_kib)),
    ("free_percent", lambda d: None if d.free_share is None else round(d.free_share, 1)),
    ("last_seen_utc", lambda d: d.last_seen.isoformat() if d.last_seen else None),
]


@login_required
def domains_csv(request: HttpRequest) -> StreamingHttpResponse:
    """The domains page's view (its filter and its order, every page) as CSV, streamed: for a spreadsheet."""
    selected, _ = filtered_domains(request)
    domains, _, _ = sorted_domains(request, selected, FLEET_DOMAIN_SORTS)
    rows = (
        ["" if (value := cell(domain)) is None else value for _, cell in CSV_COLUMNS]
        for domain in domains.iterator(chunk_size=2000)
    )
    return csv_download([heading for heading, _ in CSV_COLUMNS], rows, "domains.csv")


# -- domain ---------------------------------------------------------------------------------------------------


class SizeForm(forms.Form):
    """A memory size as people type it; the service parses the units and enforces the bounds."""

    memory = forms.CharField(max_length=20, strip=True, error_messages={"required": "Enter a size, e.g. 512 (MiB) or 2G."})


class MigrateForm(forms.Form):
    target = forms.IntegerField(error_messages={"required": "Pick a host.", "invalid": "Pick a host from the list."})


class PowerForm(forms.Form):
    # The page's buttons; "force_off" is a shutdown with force (`xm destroy`).
    action = forms.ChoiceField(
        choices=[("start", "start"), ("shutdown", "shut down"), ("restart", "restart"), ("force_off", "force off")],
        error_messages={"required": "Pick start, shut down, restart or force off.", "invalid_choice": "Pick start, shut down, restart or force off."},
    )


def domain_queryset() -> QuerySet:
    return Domain.objects.select_related("host__team")


def migration_targets(actor: Actor, domain: Domain) -> list[dict]:
    """Hosts the user may migrate to, with the room each has now (the service checks again under a lock): those
    that can take it first, the most room first (so the first choice is the one maintenance would make)."""
    targets = []
    for destination in services.destinations(actor, domain.host):
        reason = destination.closed or ("no room" if destination.free_kib < domain.memory_kib else "")
        targets.append({"host": destination.host, "free_kib": destination.free_kib, "ok": not reason, "reason": reason})
    return sorted(targets, key=lambda t: (not t["ok"], -t["free_kib"], t["host"].name))


def control_hints(domain: Domain) -> dict:
    """The text beside the maxmem, floor and power controls."""
    config_maxmem = domain.config_maxmem_kib or domain.maxmem_kib
    maxmem = f"Written to the persistent config, now {mib(config_maxmem)}."
    if domain.is_running:
        maxmem += f" A running domain takes it at its next boot; {domain.name} runs with {mib(domain.maxmem_kib)} now."
    boot = f"{mib(domain.config_memory_kib or domain.memory_kib)} (maxmem {mib(config_maxmem)})"
    if not domain.is_running:
        power = f"Start boots {domain.name} with its persistent config: {boot}."
    elif domain.awaits_restart:
        power = f"Restart to take the new maxmem: {domain.name} shuts down, then starts with {boot}."
    else:
        power = f"Restart shuts {domain.name} down, then starts it with {boot}. Shut down asks its guest; force off does not."
    return {
        "power": power,
        "maxmem": maxmem,
        "maxmem_kib": domain.config_maxmem_kib or domain.maxmem_kib,
        "floor": f"Nobody, person or autoscaler, shrinks {domain.name} below this. Now {mib(domain.floor_kib)}.",
    }


def domain_context(request: HttpRequest, domain: Domain, **extra) -> dict:
    actor = actor_of(request)
    context = {
        "nav": "fleet",
        "domain": domain,
        "host": domain.host,
        "may_resize": may(actor, "resize", domain) and domain.is_running,
        "may_set_maxmem": may(actor, "set_maxmem", domain) and domain.state != Domain.State.GONE,
        "may_set_floor": may(actor, "set_floor", domain) and domain.state != Domain.State.GONE,
        "may_migrate": may(actor, "migrate", domain) and domain.is_running,
        "may_power": may(actor, "power", domain) and domain.state != Domain.State.GONE,
        "targets": migration_targets(actor, domain) if may(actor, "migrate", domain) else [],
        # Those the person may see: not the jobs of a team the domain belonged to before (as its history).
        "jobs": with_cancel_offered(
            actor, rules.restrict(domain.jobs.select_related("host", "target_host"), actor).order_by("-pk")[:RECENT_JOBS]
        ),
        "hints": control_hints(domain),
        "chart_ranges": CHART_RANGES,
        "chart_range": DEFAULT_CHART_RANGE,
        "controls": {},
    }
    context.update(extra)
    return context


@login_required
def domain(request: HttpRequest, domain_id: int) -> HttpResponse:
    domain = get_visible(request, domain_queryset(), domain_id)
    return render(request, "pages/domain.html", domain_context(request, domain))


@login_required
def domain_part(request: HttpRequest, domain_id: int, part: str) -> HttpResponse:
    """One live region of the domain page (figures, jobs, the controls, the autoscaler's decisions, the history),
    refetched after a hint."""
    domain = get_visible(request, domain_queryset(), domain_id)
    templates = {
        "figures": "pages/_domain_figures.html", "jobs": "pages/_domain_jobs.html", "controls": "pages/_controls.html",
        "autoscaler": "autoscaler/_domain_part.html", "history": "pages/_domain_history.html",
    }
    if part not in templates:
        raise Http404("no such part of the page")
    # The autoscaler's decisions and the history need the domain alone, not the controls' host list and room.
    context = {"domain": domain} if part in ("autoscaler", "history") else domain_context(request, domain)
    return render(request, templates[part], context)


@login_required
def domain_samples(request: HttpRequest, domain_id: int) -> JsonResponse:
    """The chart's data for a range (seconds, one of CHART_RANGES), in MiB."""
    domain = get_visible(request, domain_queryset(), domain_id)
    try:
        seconds = int(request.GET.get("range", DEFAULT_CHART_RANGE))
    except ValueError:
        seconds = DEFAULT_CHART_RANGE
    if seconds not in dict(CHART_RANGES):
        seconds = DEFAULT_CHART_RANGE
    data = samples.series(domain.pk, timezone.now() - timedelta(seconds=seconds))
    return JsonResponse({"domain": domain.pk, "range": seconds, "unit": "MiB", **data})


def control_response(request: HttpRequest, domain: Domain, control: str, outcome: dict, status: int) -> HttpResponse:
    """A control after a POST: its partial (htmx), or the whole page with the outcome beside the control."""
    if not request.htmx and status < 400:
        messages.success(request, outcome["done"])  # a page without JS shows it after the redirect
        return redirect("domain", domain.pk)
    context = domain_context(request, domain, controls={control: outcome})
    template = f"pages/_{control}.html"
    return render(request, template if request.htmx else "pages/domain.html", context, status=status)


def resize(actor: Actor, domain: Domain, data: dict) -> str:
    job = services.request_resize(actor, domain, data["memory"])
    return f"Job {job.pk} queued: balloon {domain.name} to {mib(job.params['target_kib'])}."


def set_maxmem(actor: Actor, domain: Domain, data: dict) -> str:
    job = services.request_set_maxmem(actor, domain, data["memory"])
    when = "takes it at its next boot" if domain.is_running else "takes it when it starts"
    return f"Job {job.pk} queued: maxmem {mib(job.params['maxmem_kib'])} in the config; {domain.name} {when}."


def set_floor(actor: Actor, domain: Domain, data: dict) -> str:
    domain.floor_kib = services.set_floor(actor, domain, data["memory"]).floor_kib
    return f"Floor set to {bound(domain.floor_kib)}."


def migrate(actor: Actor, domain: Domain, data: dict) -> str:
    target = rules.restrict(Host.objects.all(), actor, "view").filter(pk=data["target"]).first()
    if target is None:
        raise services.NotFound("no such host")
    job = services.request_migrate(actor, domain, target)
    return f"Job {job.pk} queued: migrate {domain.name} to {target.name}."


def power(actor: Actor, domain: Domain, data: dict) -> str:
    action, force = ("shutdown", True) if data["action"] == "force_off" else (data["action"], False)
    job = services.request_power(actor, domain, action, force=force)
    what = {"start": f"start {domain.name}", "restart": f"restart {domain.name}",
            "shutdown": f"turn {domain.name} off at once" if force else f"shut {domain.name} down"}[action]
    return f"Job {job.pk} queued: {what}."


# The domain page's controls: name -> (form, action). Each is its own URL (domains/urls.py).
CONTROLS = {
    "resize": (SizeForm, resize), "maxmem": (SizeForm, set_maxmem), "floor": (SizeForm, set_floor),
    "migrate": (MigrateForm, migrate), "power": (PowerForm, power),
}


@login_required
@require_POST
def domain_control(request: HttpRequest, domain_id: int, control: str) -> HttpResponse:
    """Validate the control's form, call the service, and show its answer (or its refusal) next to the control."""
    domain = get_visible(request, domain_queryset(), domain_id)
    form_class, action = CONTROLS[control]
    form = form_class(request.POST)
    typed = form.data.get("memory", form.data.get("target", ""))
    if not form.is_valid():
        message = next(iter(form.errors.values()))[0]
        return control_response(request, domain, control, {"error": message, "value": typed}, 400)
    try:
        done = action(actor_of(request), domain, form.cleaned_data)
    except services.ServiceError as exc:
        return control_response(request, domain, control, {"error": exc.message, "value": typed}, exc.status)
    return control_response(request, domain, control, {"done": done}, 200)


# -- jobs -----------------------------------------------------------------------------------------------------


class JobFilter(forms.Form):
    state = forms.ChoiceField(choices=[("", "any state")] + list(Job.State.choices), required=False)
    host = forms.CharField(max_length=100, required=False)
    domain = forms.CharField(max_length=200, required=False)


@login_required
def jobs(request: HttpRequest) -> HttpResponse:
    actor = actor_of(request)
    selected = rules.restrict(Job.objects.select_related("domain", "host", "target_host"), actor, "view").order_by("-pk")
    form = JobFilter(request.GET or None)
    if form.is_valid():
        if form.cleaned_data["state"]:
            selected = selected.filter(state=form.cleaned_data["state"])
        if form.cleaned_data["host"]:
            name = form.cleaned_data["host"]
            selected = selected.filter(Q(host__name=name) | Q(target_host__name=name))
        if form.cleaned_data["domain"]:
            selected = selected.filter(domain__name=form.cleaned_data["domain"])
    page = Paginator(selected, JOBS_PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = with_cancel_offered(actor, page.object_list)
    hosts = rules.restrict(Host.objects.all(), actor, "view").order_by("name").values_list("name", flat=True)
    context = {
        "nav": "jobs", "page": page, "form": form if form.is_bound else JobFilter(), "hosts": hosts,
        "query": request.GET.urlencode(), "base_query": query_without(request, "page"),
    }
    return partial_or_page(request, "pages/jobs.html", "pages/_jobs_list.html", context)


@login_required
@require_POST
def job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_visible(request, Job.objects.select_related("domain", "host__team", "target_host"), job_id)
    error = ""
    try:
        job = services.cancel_job(actor_of(request), job)
    except services.ServiceError as exc:
        error, status = exc.message, exc.status
        job.refresh_from_db()
    else:
        status = 200
    # The row comes back in the table it was in: the jobs page's (wide) or a domain page's.
    wide = request.POST.get("wide", "1") != "0"
    if not request.htmx:
        if error:
            messages.error(request, error)
        else:
            messages.success(request, f"Job {job.pk} {'is stopping' if job.state == Job.State.RUNNING else 'cancelled'}.")
        return redirect("jobs") if wide or job.domain is None else redirect("domain", job.domain.pk)
    job.may_cancel = may(actor_of(request), "cancel_job", job)
    return render(request, "pages/_job_row.html", {"job": job, "row_error": error, "wide": wide}, status=status)
