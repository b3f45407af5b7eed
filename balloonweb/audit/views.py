"""The audit review page and its CSV export. Superusers see every entry; team admins their teams' entries."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render

from balloonweb.access.models import Team
from balloonweb.csv_download import csv_download
from hosts.models import Host

from .review import EXPORT_FIELDS, AuditFilter, csv_values, may_review, page, visible_entries

EXPORT_LIMIT = 1_000_000


def _filtered(request: HttpRequest):
    actor = request.actor
    if not may_review(actor):
        raise PermissionDenied("the audit log is for team admins and superusers")
    form = AuditFilter(request.GET)
    entries = visible_entries(actor)
    if form.is_valid():
        entries = form.apply(entries)
    else:
        entries = entries.none()
    return form, entries


@login_required
def review(request: HttpRequest) -> HttpResponse:
    form, entries = _filtered(request)
    rows, next_cursor = page(entries, form.cleaned_data.get("before") if form.is_valid() else None)
    query = request.GET.copy()
    query.pop("before", None)
    # Names for the ids in this page only (a page of 50, two small queries), not a join per row.
    teams = dict(Team.objects.filter(pk__in={r.team_id for r in rows if r.team_id}).values_list("pk", "name"))
    hosts = dict(Host.objects.filter(pk__in={r.host_id for r in rows if r.host_id}).values_list("pk", "name"))
    return render(request, "audit/review.html", {
        "form": form, "rows": rows, "teams": teams, "hosts": hosts, "next_cursor": next_cursor,
        "query": query.urlencode(), "nav": "audit",
    })


@login_required
def export_csv(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered view as CSV, streamed (the same columns as `manage.py audit export --format csv`)."""
    form, entries = _filtered(request)
    if form.errors:  # rather than a file of no rows, which reads as "nothing happened"
        wrong = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
        return HttpResponse(f"nothing exported, the filter is not valid: {wrong}\n", status=400, content_type="text/plain")
    rows = (csv_values(entry) for entry in entries[:EXPORT_LIMIT].iterator(chunk_size=2000))
    return csv_download(EXPORT_FIELDS, rows, "audit.csv")
