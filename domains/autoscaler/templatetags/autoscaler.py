"""The autoscaler's sections of the host, domain and fleet pages, one tag each, so that those pages need one
line: `{% load autoscaler %}{% autoscaler_host host %}`. The page has already checked that the user may view
the object; the tags only decide which controls to offer (the services check again when one is used)."""

from django import template

from balloonweb.access import rules
from domains import services
from hosts.models import Host

from .. import run, show
from ..models import Mode
from ..views import WhatIfForm, policy_form

register = template.Library()


def _actor(context):
    return getattr(context.get("request"), "actor", None)


def _allowed(context, obj) -> set[str]:
    actor = _actor(context)
    return rules.allowed_actions(actor, obj) if actor is not None else set()


@register.inclusion_tag("autoscaler/_host.html", takes_context=True)
def autoscaler_host(context, host):
    return {
        "host": host, "mode": show.host_mode(host), "may_edit": "manage_host" in _allowed(context, host),
        "form": policy_form("host", initial=show.policy_of(host)), "csrf_token": context.get("csrf_token"),
        "team_less": host.team_id is None, "request": context.get("request"),
    }


@register.inclusion_tag("autoscaler/_host_plan.html", takes_context=True)
def autoscaler_host_plan(context, host, mode=None):
    """The host's steps waiting for a person and its reasons to do nothing: a live region of the host page,
    refetched when a run of the autoscaler changes them (run.tell_pages). `mode`, when the page knows it already."""
    return {
        "host": host, "mode": mode or show.host_mode(host), "steps": show.open_steps(host), "notes": show.host_notes(host),
        "may_decide": bool({"resize", "migrate"} & _allowed(context, host)), "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("autoscaler/_team.html", takes_context=True)
def autoscaler_team(context, team):
    """The team's mode, for the team page (its admins'), and the hosts that have a mode of their own."""
    return {
        "team": team, "form": policy_form("team", initial=show.policy_of(team)), "csrf_token": context.get("csrf_token"),
        "own_modes": show.hosts_with_own_mode(team),
    }


@register.inclusion_tag("autoscaler/_domain.html", takes_context=True)
def autoscaler_domain(context, domain):
    return {
        "domain": domain, "stuck_since": show.stuck_since(domain), "may_edit": "set_floor" in _allowed(context, domain),
        "form": policy_form("domain", initial=show.policy_of(domain)), "csrf_token": context.get("csrf_token"),
        "request": context.get("request"),
    }


@register.inclusion_tag("autoscaler/_decisions.html", takes_context=True)
def autoscaler_decisions(context, domain):
    """A domain's decisions and its host's mode: a live region of the domain page (the host changes with a move).
    A step still waiting for a person can be approved or dismissed here as on the host page."""
    return {
        "domain": domain, "mode": show.host_mode(domain.host), "history": show.history(domain),
        "may_decide": bool({"resize", "migrate"} & _allowed(context, domain)), "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("autoscaler/_what_if.html", takes_context=True)
def autoscaler_what_if(context):
    """The what-if form; with `?room=...` in the query, its answer (reading only: nothing is applied by a GET)."""
    request = context.get("request")
    form = WhatIfForm(request.GET if "memory" in request.GET else None)
    answer = error = None
    may_apply = False
    if form.is_bound and form.is_valid():
        try:
            memory_kib, maxmem_kib = form.sizes()
            answer = run.what_if(_actor(context), memory_kib, maxmem_kib)
        except services.ServiceError as exc:
            error = exc.message
    if answer is not None and answer.host_id is not None:
        # Offered where applying would be accepted: the autoscaler on for every host the plan touches, and the
        # person allowed the steps there (the services check both again when it is applied).
        needed = show.what_if_actions(answer)
        may_apply = all(
            show.host_mode(h) != Mode.OFF and needed <= _allowed(context, h)
            for h in Host.objects.filter(pk__in=show.what_if_hosts(answer))
        )
    hosts = {}
    if answer is not None:
        hosts = {c.host_id: c.host_name for c in answer.candidates}
    return {
        "form": form, "answer": answer, "error": error, "may_apply": may_apply, "csrf_token": context.get("csrf_token"),
        "steps": show.what_if_steps(answer) if answer else [], "host_names": hosts,
        "signature": show.what_if_signature(answer) if answer else "",
    }


@register.filter
def host_name(names: dict, host_id):
    return names.get(host_id, f"host {host_id}") if names else f"host {host_id}"


@register.filter
def when(epoch: float | None):
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, tz=timezone.utc) if epoch else None
