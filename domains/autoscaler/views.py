"""The autoscaler's page actions: approve or dismiss a recommended step, edit a host's or domain's policy, apply
a what-if. Each is a plain POST form on the host, domain or fleet page, answered with a redirect back to that
page and a message (the pages' sections are template tags: templatetags/autoscaler.py).

Permissions: the object is found as the user may view it (404 for outsiders), the change goes through run.py,
whose service calls check the right (403 for members without it). Other refusals come back as a message.
"""

from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from balloonweb.access.models import Team
from domains import services
from domains.models import Domain
from domains.samples import series
from domains.views import actor_of, domain_queryset, get_visible, refusal
from hosts.models import Host

from . import run, show
from .models import Decision
from .reasons import mib
from .show import POLICY_FIELDS


def visible_decision(request: HttpRequest, decision_id: int) -> Decision:
    decision = Decision.objects.filter(pk=decision_id).select_related("host").first()
    if decision is None or decision.host is None:
        raise Http404("no such step")
    get_visible(request, Host.objects.all(), decision.host_id)
    return decision


@login_required
@require_POST
def decide(request: HttpRequest, decision_id: int, verdict: str) -> HttpResponse:
    """Approve (the step's job is created as this person) or dismiss a recommended step."""
    decision = visible_decision(request, decision_id)
    try:
        if verdict == "approve":
            done = run.approve(actor_of(request), decision)
            messages.success(request, f"Approved: job {done.job_id} queued. {done.reason}")
        else:
            run.dismiss(actor_of(request), decision)
            messages.success(request, "Dismissed: the autoscaler will not take this step unless its next plan makes it again.")
    except services.ServiceError as exc:
        refusal(request, exc)
    # Back to the page the form was on: the domain's (its decisions list) or the host's (its plan).
    if request.POST.get("back") == "domain" and decision.domain_id is not None:
        return redirect("domain", decision.domain_id)
    return redirect("host", decision.host_id)


@login_required
@require_POST
def approve_plan(request: HttpRequest, host_id: int) -> HttpResponse:
    """Approve every step recommended on a host (run.approve_plan), and say what became of each."""
    host = get_visible(request, Host.objects.select_related("team"), host_id)
    shown = [int(pk) for pk in request.POST.get("steps", "").split(",") if pk.isdigit()] if "steps" in request.POST else None
    try:
        steps = run.approve_plan(actor_of(request), host, shown)
    except services.ServiceError as exc:
        refusal(request, exc)
        return redirect("host", host.pk)
    messages.success(request, show.approved_summary(steps))
    for step in steps:
        if step.state == Decision.State.RECOMMENDED:
            messages.error(request, f"Not approved: {show.step_title(step)}: {step.error}")
    return redirect("host", host.pk)


def policy_form(kind: str, data=None, initial=None) -> forms.Form:
    model, fields = POLICY_FIELDS[kind]
    return forms.modelform_factory(model, fields=fields)(data, initial=initial)


@login_required
@require_POST
def edit_policy(request: HttpRequest, kind: str, object_id: int) -> HttpResponse:
    """Save the changed settings of a team's, host's or domain's policy (run.set_policy: admins, bounds, audit)."""
    queryset = {"team": Team.objects.all(), "host": Host.objects.select_related("team"), "domain": domain_queryset()}[kind]
    obj = get_visible(request, queryset, object_id)
    form = policy_form(kind, request.POST)
    back = redirect(kind, obj.pk)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{name}: {errors[0]}" for name, errors in form.errors.items()))
        return back
    now = show.policy_of(obj)
    changed = {name: value for name, value in form.cleaned_data.items() if value != now[name]}
    if not changed:
        messages.info(request, "Nothing changed.")
        return back
    try:
        run.set_policy(actor_of(request), obj, **changed)
        messages.success(request, "Autoscaling policy saved: " + ", ".join(f"{k} {v}" for k, v in changed.items()) + ".")
    except services.ServiceError as exc:
        refusal(request, exc)
    return back


class WhatIfForm(forms.Form):
    """"Make room for one more": sizes as people type them (512, 2G, 524288K); the service parses them."""

    memory = forms.CharField(max_length=20, strip=True, label="Memory")
    maxmem = forms.CharField(max_length=20, strip=True, required=False, label="Maxmem", help_text="as memory when empty")

    def sizes(self) -> tuple[int, int]:
        memory = services.parse_size(self.cleaned_data["memory"])
        return memory, services.parse_size(self.cleaned_data["maxmem"]) if self.cleaned_data["maxmem"] else memory


@login_required
@require_POST
def apply_what_if(request: HttpRequest) -> HttpResponse:
    """Work the what-if out again (the fleet moved since the page was drawn) and apply it as the person, where
    the autoscaler is on. The new domain itself is then created as usual; this makes the room."""
    form = WhatIfForm(request.POST)
    back = redirect("fleet")
    try:
        if not form.is_valid():
            raise services.BadRequest("Enter a size, e.g. 2048 (MiB) or 2G.")
        memory_kib, maxmem_kib = form.sizes()
        answer = run.what_if(actor_of(request), memory_kib, maxmem_kib)
        decisions = show.apply_what_if_as_person(actor_of(request), answer, request.POST.get("plan"))
    except services.ServiceError as exc:
        refusal(request, exc)
        if form.is_valid():  # back to the answer as it is now, beside the message
            query = urlencode({"memory": form.cleaned_data["memory"], "maxmem": form.cleaned_data["maxmem"]})
            return HttpResponseRedirect(f"{reverse('fleet')}?{query}#what-if")
        return back
    applied = sum(d.state == Decision.State.APPLIED for d in decisions)
    messages.success(request, f"Making room for {mib(memory_kib)}: {applied} of {len(decisions)} steps queued. {answer.reason}")
    return back


@login_required
def domain_chart(request: HttpRequest, domain_id: int) -> JsonResponse:
    """The autoscaler chart's data: the balloon target and actual (MemorySample, MiB) over the decisions' span,
    and each step the autoscaler took or proposed, at its time, as its target (MiB)."""
    domain: Domain = get_visible(request, domain_queryset(), domain_id)
    since = timezone.now() - show.CHART_SPAN
    data = series(domain.pk, since)
    steps = Decision.objects.filter(domain=domain, kind=Decision.Kind.STEP, at__gte=since, step_kind="resize").order_by("at")
    data["steps"] = [[int(d.at.timestamp()), round(d.to_kib / 1024, 1), d.state] for d in steps]
    return JsonResponse({"domain": domain.pk, "unit": "MiB", **data})
