"""The review filters, shared by the review page and `manage.py audit export`, and keyset pagination."""

import json
from datetime import datetime, time

from django import forms
from django.apps import apps
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet, Subquery
from django.utils import timezone

from balloonweb.access import rules
from balloonweb.access.actors import Actor
from balloonweb.ids import as_id
from balloonweb.instants import InstantField

from .models import AuditEntry

PAGE_SIZE = 50


def by_actor(entries: QuerySet, name: str) -> QuerySet:
    """Entries of an actor by its label ("command line", "alice/ci (bw_...)") or by its user's name: alice's
    page, API token and `xm --user` actions alike."""
    users = get_user_model().objects.filter(username=name).values("pk")
    return entries.filter(Q(actor_label=name) | Q(actor_user_id__in=users))


def in_period(entries: QuerySet, since: datetime | None, until: datetime | None) -> QuerySet:
    """Entries at or after `since` and at or before `until` (either may be None). The times become id bounds
    too: `at` is taken under the chain lock, so it grows with the id, and a page is then one range of the
    primary key instead of every entry of the period sorted by id."""
    if since:
        first = AuditEntry.objects.filter(at__gte=since).order_by("at", "id").values("id")[:1]  # ties: the first
        entries = entries.filter(at__gte=since, id__gte=Subquery(first))
    if until:
        last = AuditEntry.objects.filter(at__lte=until).order_by("-at", "-id").values("id")[:1]
        entries = entries.filter(at__lte=until, id__lte=Subquery(last))
    return entries
EXPORT_FIELDS = (
    "id", "at", "actor_kind", "actor_label", "actor_user_id", "action", "object_type", "object_id", "object_repr",
    "team_id", "host_id", "domain_id", "before", "after", "result", "message", "job_id", "request_id", "client_ip", "mac",
)


class AuditFilter(forms.Form):
    actor = forms.CharField(required=False, help_text="user name, token or command line label")
    team = forms.CharField(required=False, help_text="name or id")
    host = forms.CharField(required=False, help_text="name or id")
    domain = forms.CharField(required=False, help_text="name or id")
    action = forms.CharField(required=False, help_text="e.g. domain.resize, or domain. for all domain actions")
    result = forms.ChoiceField(required=False, choices=[("", "any"), *AuditEntry.Result.choices])
    since = InstantField(required=False, help_text="YYYY-MM-DD [HH:MM]")
    until = InstantField(required=False, help_text="YYYY-MM-DD [HH:MM]")
    q = forms.CharField(required=False, label="Text", help_text="in the object, the message and the actor")
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)  # keyset cursor

    def clean_until(self):
        until = self.cleaned_data.get("until")
        # A bare date means the whole day.
        if until and until.time() == time(0) and len(str(self.data.get("until", "")).strip()) <= 10:
            until = until.replace(hour=23, minute=59, second=59, microsecond=999999)
        return until

    def apply(self, entries: QuerySet) -> QuerySet:
        """Filter with every condition given (the form must be valid); newest first."""
        data = self.cleaned_data
        if data.get("actor"):
            entries = by_actor(entries, data["actor"])
        for name, model in (("team", "access.Team"), ("host", "hosts.Host"), ("domain", "domains.Domain")):
            if data.get(name):
                entries = entries.filter(**{f"{name}_id__in": _ids(model, data[name])})
        if data.get("action"):
            action = data["action"]
            entries = entries.filter(action__startswith=action) if action.endswith(".") else entries.filter(action=action)
        if data.get("result"):
            entries = entries.filter(result=data["result"])
        entries = in_period(entries, data.get("since"), data.get("until"))
        if data.get("q"):
            q = data["q"]
            entries = entries.filter(Q(object_repr__icontains=q) | Q(message__icontains=q) | Q(actor_label__icontains=q))
        return entries.order_by("-id")


def _ids(model: str, value: str) -> list[int]:
    """An id as given, or the ids of the objects with that name (a domain name may be on several hosts).
    Entries of objects since deleted are found by id."""
    value = value.strip()
    if (given_id := as_id(value)) is not None:
        return [given_id]
    return list(apps.get_model(model).objects.filter(name=value).values_list("pk", flat=True)[:100])


def visible_entries(actor: Actor) -> QuerySet:
    """Superusers (and the command line) see every entry; a team admin those of the teams they administer."""
    entries = AuditEntry.objects.all()
    if actor.is_privileged:
        return entries
    return entries.filter(team_id__in=rules.team_ids_allowing(actor, "view_audit"))


def may_review(actor: Actor) -> bool:
    return actor.is_privileged or bool(rules.team_ids_allowing(actor, "view_audit"))


def page(entries: QuerySet, before: int | None, size: int = PAGE_SIZE) -> tuple[list[AuditEntry], int | None]:
    """One page, newest first, below the cursor; and the cursor of the next page (None on the last). Keyset
    pagination: no OFFSET, no COUNT, one index range scan however deep the page."""
    if before:
        entries = entries.filter(id__lt=before)
    rows = list(entries[: size + 1])
    return rows[:size], (rows[size - 1].id if len(rows) > size else None)


def as_row(entry: AuditEntry) -> dict:
    row = {name: getattr(entry, name) for name in EXPORT_FIELDS}
    row["at"] = entry.at.isoformat(timespec="microseconds")
    return row


def csv_values(entry: AuditEntry) -> list:
    """One CSV row in EXPORT_FIELDS order: before/after as JSON, nothing as an empty cell."""
    return [json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else ("" if v is None else v) for v in as_row(entry).values()]


def parse_date(text: str) -> datetime:
    """A date or a date and time, in UTC unless it says otherwise."""
    value = forms.DateTimeField().clean(text)
    return value if timezone.is_aware(value) else timezone.make_aware(value, timezone.utc)
