"""What the pages and the API show of the autoscaler, and the two things they both do beyond run.py: read a
policy (its values, or the defaults when none was saved) and apply a what-if only where the hosts are automatic.

Permissions are not decided here: callers find objects through balloonweb.access.rules and change them
through run.py, which asks the services.
"""

from datetime import timedelta

from django.db.models import QuerySet

from balloonweb.audit.log import record
from balloonweb.audit.models import AuditEntry
from domains import services
from domains.models import Domain
from hosts.models import Host
from hosts.units import format_mib as mib

from .models import Decision, DomainPolicy, DomainState, HostMode, HostPolicy, Mode, TeamPolicy
from .plan import PLACE
from .run import apply_what_if
from .state import host_mode
from .whatif import WhatIf

HISTORY_LENGTH = 30
CHART_SPAN = timedelta(hours=1)  # the domain page's autoscaler chart

# The settings a person edits, per policy (run.set_policy checks their bounds).
POLICY_FIELDS = {
    "team": (TeamPolicy, ["mode"]),
    "host": (HostPolicy, ["mode", "target_use", "migrations_in", "migrations_out", "migrations_per_hour"]),
    "domain": (DomainPolicy, ["free_share", "deadband_share", "priority", "shrink_cooldown_s", "migrate_cooldown_s"]),
}


def policy_of(obj) -> dict:
    """The policy's values now: the saved row, else the model's defaults (nothing is written by reading)."""
    kind = obj._meta.model_name
    model, fields = POLICY_FIELDS[kind]
    row = model.objects.filter(**{kind: obj}).first() or model(**{kind: obj})
    return {name: getattr(row, name) for name in fields}


def hosts_with_own_mode(team) -> list[tuple[str, str]]:
    """(host name, mode) of the team's hosts whose own policy overrides the team's mode."""
    return list(
        HostPolicy.objects.filter(host__team=team).exclude(mode=HostMode.INHERIT).order_by("host__name")
        .values_list("host__name", "mode")
    )


def open_steps(host: Host) -> list[Decision]:
    """Steps recommended on this host, waiting for a person, in the order Approve all sends them."""
    steps = Decision.objects.filter(host=host, state=Decision.State.RECOMMENDED).select_related("domain", "to_host")
    return sorted(steps, key=lambda step: step.plan_order)


def host_notes(host: Host) -> QuerySet:
    """The host's latest reasons to do nothing (or less): those of its most recent run that kept any."""
    latest = Decision.objects.filter(host=host, domain=None, kind=Decision.Kind.NOTE).values_list("at", flat=True).first()
    return Decision.objects.filter(host=host, domain=None, kind=Decision.Kind.NOTE, at=latest) if latest else Decision.objects.none()


def history(domain: Domain, limit: int = HISTORY_LENGTH) -> list[Decision]:
    return list(Decision.objects.filter(domain=domain).select_related("job", "to_host", "decided_by")[:limit])


def stuck_since(domain: Domain) -> float | None:
    """When the engine flagged this domain's balloon as stuck (seconds since the epoch), or None."""
    return DomainState.objects.filter(domain=domain).values_list("stuck_since", flat=True).first()


def what_if_signature(answer: WhatIf) -> str:
    """What a person saw of a what-if: its host and its steps (kinds, domains, hosts; not sizes, which creep
    with demand). An Apply whose plan, worked out again, differs applies nothing: a double click would otherwise
    find the first click's shrinks busy and shrink or move other domains, steps nobody saw."""
    steps = ",".join(f"{s.kind}/{s.domain_id}/{s.host_id}/{s.to_host_id or ''}" for s in what_if_steps(answer))
    return f"{answer.host_id}:{steps}"


def apply_what_if_as_person(actor, answer: WhatIf, shown: str | None = None) -> list[Decision]:
    """Apply a what-if's steps as the person who asks (their rights, their jobs), only when every host they touch
    has the autoscaler on: in recommend mode this click is the person's approval of those steps; off means hands
    off (the plan would not have counted on such a host, but its mode may have changed since)."""
    if answer.host_id is None:
        raise services.Conflict(f"nothing to apply: {answer.reason}", "no_room")
    if shown is not None and shown != what_if_signature(answer):
        raise services.Conflict(
            "nothing was applied: the fleet changed since the answer was shown, and the plan now is another one; "
            "look at it again and apply it if it suits you", "plan_changed",
        )
    for host in Host.objects.filter(pk__in=what_if_hosts(answer)).select_related("team").order_by("name"):
        if host_mode(host) == Mode.OFF:
            raise services.Conflict(f"the autoscaler is off on {host.name}: a what-if is applied only on hosts in recommend or automatic mode", "autoscaler_off")
        # Every right first, so that a person without one gets a refusal rather than a row of refused steps.
        for action in what_if_actions(answer):
            try:
                services.check_permission(actor, action, host)
            except services.Forbidden as exc:
                record(actor, "autoscaler.what_if", host, result=AuditEntry.Result.REFUSED, message=exc.message)
                raise
    return apply_what_if(actor, answer)


def what_if_hosts(answer: WhatIf) -> set[int]:
    """The hosts a what-if's plan touches: where the domain goes, where steps shrink or move, where moves land."""
    steps = answer.plan.steps
    return {answer.host_id} | {s.host_id for s in steps} | {s.to_host_id for s in steps if s.to_host_id}


def what_if_actions(answer: WhatIf) -> set[str]:
    """The rights a what-if's steps need on the hosts they touch."""
    return {"resize"} | ({"migrate"} if any(s.kind == "migrate" for s in answer.plan.steps) else set())


def step_title(step: Decision) -> str:
    """A step as the host page names it: "resize web1 1,536 MiB → 799 MiB", "migrate db1 to hv2"."""
    if step.step_kind == "migrate":
        return f"migrate {step.domain.name} to {step.to_host.name}"
    return f"resize {step.domain.name} {mib(step.from_kib)} → {mib(step.to_kib)}"


def approved_summary(steps: list[Decision]) -> str:
    """What approving a host's plan did, in one sentence."""
    applied = [s for s in steps if s.state == Decision.State.APPLIED]
    waiting = [s for s in steps if s.state == Decision.State.WAITING]
    text = f"Approved {len(applied) + len(waiting)} of {len(steps)} steps"
    if applied:
        text += ": job" + ("s " if len(applied) > 1 else " ") + ", ".join(str(s.job_id) for s in applied) + " queued"
    if waiting:
        text += f"; {len(waiting)} will run as yours when the shrinks they need have ended"
    return text + "."


def what_if_steps(answer: WhatIf) -> list:
    """The steps to show (the placement is said by the answer's host)."""
    return [s for s in answer.plan.steps if s.kind != PLACE]
