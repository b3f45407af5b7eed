"""The autoscaler after each poll: plan over a snapshot of the database, remember what the engine needs next
cycle, apply the steps of hosts in automatic mode through the services (each an ordinary Job, audited with the
autoscaler as actor and its policy version), keep those of hosts in recommend mode for a person to approve or
dismiss, and keep every decision, including "do nothing because ...", for a while.
"""

import math
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from datetime import timezone as tz

from django.conf import settings
from django.db import transaction
from django.db.models import F, IntegerField, OuterRef, Q, Subquery
from django.utils import timezone

from balloonweb.access import rules
from balloonweb.access.actors import Actor
from balloonweb.audit.log import record
from balloonweb.audit.models import AuditEntry
from balloonweb.live.publish import publish_many
from domains import services
from domains.models import Domain
from hosts.models import Host

from . import snapshot as engine
from .controller import STUCK
from .models import Decision, DomainPolicy, DomainState, EngineState, HostPolicy, HostState, Mode, TeamPolicy
from .plan import MIGRATE, PLACE, RESIZE, Plan, Step
from .planner import plan as make_plan
from .state import SnapshotContext, build_snapshot, host_mode
from .whatif import NewDomain, WhatIf, make_room

KEEP_DECISIONS_FOR = timedelta(days=7)
PRUNE_EVERY_S = 3600
# A step a person dismissed is not recommended again for this long, unless the plan's size for it changes
# beyond its domain's deadband: the engine is deterministic, and would put it back on the page at the next poll.
DISMISSAL_HOLDS_FOR = timedelta(hours=1)
# A step the services refused for a rule people set (a team's operator limit or quota, a right) is not sent
# again for this long: it would be refused, and audited, at every poll. A refusal for room is not held: room
# comes back as balloons move.
REFUSAL_HOLDS_FOR = timedelta(minutes=10)
HELD_REFUSALS = ("forbidden", "team_limit", "team_quota")
# Two pollers finishing together (one per host group) make one run, not two.
MIN_RUN_INTERVAL_S = settings.POLL_INTERVAL / 2


@dataclass
class RunReport:
    ran: bool
    note: str = ""
    policy_version: str = ""
    steps: int = 0
    applied: int = 0
    recommended: int = 0
    waiting: int = 0
    refused: int = 0
    decisions_kept: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def claim_run(now: float) -> float | None:
    """Compare-and-set on the engine's row: for the one caller that may run now, when the run before began."""
    previous = EngineState.get().last_run_at
    claimed = EngineState.objects.filter(pk=1, last_run_at__lte=now - MIN_RUN_INTERVAL_S).update(last_run_at=now)
    return previous if claimed else None


def run_autoscaler(now: float | None = None) -> RunReport:
    """One cycle of the autoscaler. Call it after each poll (domains.autoscaler.tasks.autoscale does)."""
    now = time.time() if now is None else now
    previous_run_at = claim_run(now)
    if previous_run_at is None:
        return RunReport(False, "another run is under way or has just run")
    started = time.perf_counter()
    context = build_snapshot(now)
    the_plan = make_plan(context.snapshot)
    at = datetime.fromtimestamp(now, tz=tz.utc)
    report = RunReport(True, policy_version=context.policy_version, steps=len(the_plan.steps))

    automatic_teams = sorted({t for h, t in context.teams.items() if t is not None and context.modes[h] == Mode.AUTOMATIC})
    actor = Actor.autoscaler(context.policy_version, automatic_teams)
    decisions, grown, superseded = _apply_or_recommend(actor, context, the_plan, at, report)
    notes, host_codes = _notes(context, the_plan, at)
    decisions += notes
    Decision.objects.bulk_create(decisions, batch_size=2000)
    report.decisions_kept = len(decisions)
    send_when_shrinks_end(decisions)
    _remember(context, the_plan, decisions, grown, host_codes, now)
    tell_pages([(d.host_id, d.domain_id) for d in decisions] + superseded)
    give_up_waiting(at)
    if previous_run_at // PRUNE_EVERY_S != now // PRUNE_EVERY_S:
        prune_decisions(at)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def prune_decisions(at: datetime) -> int:
    """Forget decisions older than KEEP_DECISIONS_FOR, but for each domain's latest reason and each host's latest
    set of reasons: those are written once, when they change, so a domain stable for a week would show none."""
    latest_domain_note = Decision.objects.filter(kind=Decision.Kind.NOTE, domain=OuterRef("domain")).order_by("-at", "-id").values("pk")[:1]
    latest_host_notes = Decision.objects.filter(kind=Decision.Kind.NOTE, domain=None, host=OuterRef("host")).order_by("-at").values("at")[:1]
    return (
        Decision.objects.filter(at__lt=at - KEEP_DECISIONS_FOR)
        .exclude(kind=Decision.Kind.NOTE, domain__isnull=False, pk=Subquery(latest_domain_note))
        .exclude(kind=Decision.Kind.NOTE, domain__isnull=True, at=Subquery(latest_host_notes))
        .delete()[0]
    )


# -- applying and recommending --------------------------------------------------------------------------------

WAITING_FIRST_LOOK_S = 1.0
# The task that sends waiting steps gives up after about 10 s (tasks.WAITING_RETRIES); this is far beyond it.
WAITING_GIVE_UP_AFTER = timedelta(minutes=5)


def _step_decision(step: Step, mode: str, version: str, at: datetime) -> Decision:
    return Decision(
        at=at, kind=Decision.Kind.STEP, code=step.code, host_id=step.host_id, domain_id=step.domain_id,
        step_kind=step.kind, from_kib=step.from_kib, to_kib=step.to_kib, to_host_id=step.to_host_id,
        reason=step.reason, figures=step.figures, mode=mode, policy_version=version, state=Decision.State.RECOMMENDED,
    )


def _apply_or_recommend(actor: Actor, context: SnapshotContext, the_plan: Plan, at: datetime, report: RunReport):
    decisions: list[Decision] = []
    grown: set[int] = set()
    shrinking_hosts: set[int] = set()
    kept = _open_recommendations()
    held = _held_steps(at)
    deadbands = {d.id: d.policy.deadband_share for d in context.snapshot.domains}

    def near(to_kib: int | None, step: Step) -> bool:
        # Within the domain's deadband of what the plan says now: the same step, though demand crept by a MiB.
        return to_kib is not None and abs(to_kib - step.to_kib) <= deadbands.get(step.domain_id, 0.0) * step.from_kib

    for step in the_plan.steps:  # shrinks, then migrations, then grows
        mode = context.modes.get(step.host_id, Mode.OFF)
        if step.kind == MIGRATE and context.modes.get(step.to_host_id) == Mode.RECOMMEND:
            mode = Mode.RECOMMEND  # a host in recommend mode takes in nothing a person has not approved
        key = (step.domain_id, step.kind, step.to_host_id, step.host_id)
        if any(near(to_kib, step) for to_kib in held.get(key, ())):
            continue
        if mode == Mode.RECOMMEND:
            waiting = kept.get(key)
            # The same step is still on the page: leave it there, so that a person's Approve is not refused
            # because demand crept by 1 MiB.
            if waiting is not None and near(waiting[1], step):
                del kept[key]
            else:
                decisions.append(_step_decision(step, mode, context.policy_version, at))
                report.recommended += 1
            continue
        decision = _step_decision(step, mode, context.policy_version, at)
        room_coming = step.to_host_id if step.kind == MIGRATE else step.host_id
        apply_step(actor, decision, waits_for_shrinks=room_coming in shrinking_hosts)
        if decision.state == Decision.State.APPLIED:
            report.applied += 1
            if step.is_shrink:
                shrinking_hosts.add(step.host_id)
            if step.is_grow:
                grown.add(step.domain_id)
        elif decision.state == Decision.State.WAITING:
            report.waiting += 1
        else:
            report.refused += 1
        decisions.append(decision)
    # A stuck balloon waiting for its next try is not planned afresh: the retry recommended for it stays for a
    # person (in recommend mode it is the way out of being stuck) until a later plan makes another step.
    waiting_to_retry = {d.domain_id for d in the_plan.decisions if d.code == STUCK}
    kept = {key: value for key, value in kept.items() if key[0] not in waiting_to_retry}
    if kept:  # recommendations this plan no longer makes, or of hosts no longer in recommend mode
        Decision.objects.filter(pk__in=[pk for pk, _ in kept.values()], state=Decision.State.RECOMMENDED).update(
            state=Decision.State.SUPERSEDED
        )
    superseded = [(host_id, domain_id) for (domain_id, _, _, host_id), _ in kept.items()]
    return decisions, grown, superseded


def _open_recommendations() -> dict[tuple, tuple[int, int]]:
    """{(domain, kind, destination, host): (decision, to_kib)} of the steps waiting for a person. The host is
    part of the key: a domain that moved since is planned afresh where it is, and its old step goes."""
    rows = Decision.objects.filter(state=Decision.State.RECOMMENDED).values_list(
        "pk", "domain_id", "step_kind", "to_kib", "to_host_id", "host_id"
    )
    return {(domain_id, kind, to_host, host_id): (pk, to_kib) for pk, domain_id, kind, to_kib, to_host, host_id in rows}


def _held_steps(at: datetime) -> dict[tuple, list[int]]:
    """{(domain, kind, destination, host): [to_kib, ...]} of steps recently dismissed, or refused for a rule
    people set (DISMISSAL_HOLDS_FOR, REFUSAL_HOLDS_FOR): the run does not make them again meanwhile."""
    rows = Decision.objects.filter(
        Q(state=Decision.State.DISMISSED, decided_at__gte=at - DISMISSAL_HOLDS_FOR)
        | Q(state=Decision.State.REFUSED, error_code__in=HELD_REFUSALS, at__gte=at - REFUSAL_HOLDS_FOR)
    ).values_list("domain_id", "step_kind", "to_host_id", "host_id", "to_kib")
    held: dict[tuple, list[int]] = {}
    for domain_id, kind, to_host, host_id, to_kib in rows:
        held.setdefault((domain_id, kind, to_host, host_id), []).append(to_kib)
    return held


def tell_pages(changed: list[tuple[int, int | None]]) -> None:
    """Hint the pages of the hosts, and of the domains, whose decisions changed ((host, domain or None) pairs):
    a host page refetches its plan, a domain page its decisions. A run that changes nothing sends nothing."""
    domains_by_host: dict[int, set[int]] = {}
    for host_id, domain_id in changed:
        domains = domains_by_host.setdefault(host_id, set())
        if domain_id is not None:
            domains.add(domain_id)
    publish_many([
        ("host", host_id, {"type": "autoscaler", "host": host_id, "domains": sorted(domains)})
        for host_id, domains in sorted(domains_by_host.items())
    ])


def request_step(actor: Actor, decision: Decision):
    """The step's job, from the services (which check permission, bounds and room); raises their refusal."""
    # The row as it is, so that a refusal's audit entry names the domain (the services lock and read it again).
    domain = Domain.objects.filter(pk=decision.domain_id).first() or Domain(pk=decision.domain_id, host_id=decision.host_id)
    if decision.step_kind == RESIZE:
        return services.request_resize(actor, domain, f"{decision.to_kib}K")
    if decision.step_kind == MIGRATE:
        return services.request_migrate(actor, domain, Host(pk=decision.to_host_id))
    raise services.BadRequest(f"a {decision.step_kind} step is not applied by the autoscaler")


def apply_step(actor: Actor, decision: Decision, *, waits_for_shrinks: bool = False) -> Decision:
    """Ask the services for the step's job. A step refused for room while shrinks of the same run are pending
    waits for them (a pending shrink stays booked until its job ends); any other refusal is kept as it is."""
    try:
        job = request_step(actor, decision)
    except services.ServiceError as exc:
        if waits_for_shrinks and exc.code == "no_room":
            decision.state = Decision.State.WAITING
        else:
            decision.state = Decision.State.REFUSED
        decision.error, decision.error_code = exc.message, exc.code
        return decision
    decision.state, decision.job, decision.error, decision.error_code = Decision.State.APPLIED, job, "", ""
    return decision


def started_shrink_cooldown(applied: list[Decision]) -> None:
    """A grow applied outside the run (approved, or sent after its shrinks) starts the domain's shrink cooldown,
    as the run's own grows do: the next cycle would otherwise shrink it back on the figures before it grew."""
    grown = [d.domain_id for d in applied if d.is_grow]
    if grown:
        DomainState.objects.filter(pk__in=grown).update(last_grown_at=time.time())


def send_when_shrinks_end(decisions: list[Decision]) -> None:
    """Have the steps among `decisions` that wait for shrinks sent again (tasks.apply_waiting), once saved."""
    waiting = [d.pk for d in decisions if d.state == Decision.State.WAITING]
    if waiting:
        from .tasks import apply_waiting as task

        transaction.on_commit(lambda: task.apply_async(args=[waiting], countdown=WAITING_FIRST_LOOK_S))


def give_up_waiting(at: datetime) -> int:
    """Steps still waiting for shrinks long after those ended (the task that sends them was lost with its worker)
    are refused, so that nothing waits forever; the next plan decides afresh."""
    cutoff = at - WAITING_GIVE_UP_AFTER
    expired = Decision.objects.filter(state=Decision.State.WAITING).filter(
        Q(decided_at__lt=cutoff) | Q(decided_at__isnull=True, at__lt=cutoff)
    )
    return expired.update(
        state=Decision.State.REFUSED,
        error=f"not sent: still waiting for shrinks after {WAITING_GIVE_UP_AFTER.seconds // 60} minutes; the autoscaler plans afresh",
    )


def apply_waiting(decision_ids: list[int]) -> tuple[int, int]:
    """Send again the steps that waited for shrinks (their jobs have ended or are about to). Returns (applied,
    still refused); a step refused now is planned afresh by the next run."""
    applied = refused = 0
    waiting = list(Decision.objects.filter(pk__in=decision_ids, state=Decision.State.WAITING).select_related("host", "decided_by"))
    teams = sorted({d.host.team_id for d in waiting if d.host.team_id is not None})
    for decision in waiting:
        person = decision.decided_by
        if person is not None and not person.is_active:
            decision.state, decision.error = Decision.State.REFUSED, f"not sent: {person.username}'s account was deactivated since"
        elif person is None and (mode := host_mode(decision.host)) != Mode.AUTOMATIC:
            decision.state, decision.error = Decision.State.REFUSED, f"not sent: {decision.host.name} is in mode {mode} now"
        else:
            # A step a person approved (a plan, a what-if) stays theirs: their rights, their name in the audit log;
            # the autoscaler's names the policy it was planned under.
            apply_step(Actor.for_user(person) if person else Actor.autoscaler(decision.policy_version, teams), decision)
        decision.save(update_fields=["state", "job", "error", "error_code"])
        if decision.state == Decision.State.APPLIED:
            applied += 1
        else:
            refused += 1
    started_shrink_cooldown([d for d in waiting if d.state == Decision.State.APPLIED])
    tell_pages([(d.host_id, d.domain_id) for d in waiting])
    return applied, refused


# -- what is kept ---------------------------------------------------------------------------------------------


def _notes(context: SnapshotContext, the_plan: Plan, at: datetime) -> tuple[list[Decision], dict[int, str]]:
    """Decisions to do nothing (or less), kept when they change: a domain's reason, a host's set of reasons.
    Returns them and every host's reasons now."""
    notes = []
    version = context.policy_version
    by_host: dict[int, list] = {}
    for d in the_plan.decisions:
        if d.domain_id is None:
            by_host.setdefault(d.host_id, []).append(d)
            continue
        if context.last_codes.get(d.domain_id) == d.code:
            continue
        notes.append(Decision(
            at=at, kind=Decision.Kind.NOTE, code=d.code, host_id=d.host_id, domain_id=d.domain_id, reason=d.reason,
            figures=d.figures, mode=context.modes.get(d.host_id, Mode.OFF), policy_version=version,
            state=Decision.State.NOTED,
        ))
    host_codes = {host_id: "" for host_id in context.host_codes}
    for host_id, host_decisions in by_host.items():
        codes = host_codes[host_id] = ",".join(sorted(d.code for d in host_decisions))
        if context.host_codes.get(host_id) == codes:
            continue
        for d in host_decisions:
            notes.append(Decision(
                at=at, kind=Decision.Kind.NOTE, code=d.code, host_id=host_id, reason=d.reason, figures=d.figures,
                mode=context.modes.get(host_id, Mode.OFF), policy_version=version, state=Decision.State.NOTED,
            ))
    return notes, host_codes


def _remember(context: SnapshotContext, the_plan: Plan, decisions: list[Decision], grown: set[int],
              host_codes: dict[int, str], now: float) -> None:
    """Write what the engine needs next cycle: each domain's watch and last decision, each host's squeeze."""
    last_code = {d.domain_id: d.code for d in decisions if d.domain_id is not None}
    fields = [*engine.BalloonWatch._fields, "last_grown_at", "last_code"]
    create, update = [], []
    for domain_id, watch in the_plan.watches.items():
        code = last_code.get(domain_id, context.last_codes.get(domain_id, ""))
        grown_at = now if domain_id in grown else context.last_grown.get(domain_id)
        stored = context.stored_watches.get(domain_id)
        if stored == watch and code == context.last_codes.get(domain_id) and grown_at == context.last_grown.get(domain_id):
            continue  # nothing new: no write
        row = DomainState(domain_id=domain_id, last_grown_at=grown_at, last_code=code, **watch._asdict())
        (update if stored is not None else create).append(row)
    DomainState.objects.bulk_create(create, batch_size=2000, ignore_conflicts=True)
    DomainState.objects.bulk_update(update, fields, batch_size=2000)

    # A host's row when its squeeze, its coincidence or its set of reasons changed (a managed host's are in the plan).
    host_rows = []
    for host_id, codes in host_codes.items():
        since = the_plan.squeezed_since.get(host_id, context.stored_squeezed.get(host_id))
        stored_coincidence = context.stored_coincidences.get(host_id, engine.NO_COINCIDENCE)
        coincidence = the_plan.coincidences.get(host_id, stored_coincidence)
        changed = since != context.stored_squeezed.get(host_id) or coincidence != stored_coincidence
        if changed or codes != context.host_codes.get(host_id):
            host_rows.append(HostState(
                host_id=host_id, squeezed_since=since, last_codes=codes, coincident_kib=coincidence.kib,
                coincident_least_kib=coincidence.least_kib, coincident_at=coincidence.at,
            ))
    HostState.objects.bulk_create(
        host_rows, batch_size=2000, update_conflicts=True, unique_fields=["host"],
        update_fields=["squeezed_since", "last_codes", "coincident_kib", "coincident_least_kib", "coincident_at"],
    )


# -- people: approving, dismissing, editing policies, the what-if -----------------------------------------------


@services.audit_refusals("autoscaler.approve")
def approve(actor: Actor, decision: Decision) -> Decision:
    """A person approves a recommended step: its job is created as theirs (their rights, their audit entry)."""
    with transaction.atomic():
        decision = Decision.objects.select_for_update().get(pk=decision.pk)
        if decision.state != Decision.State.RECOMMENDED:
            raise services.Conflict(f"this step is {decision.get_state_display()}: only a recommended step can be approved", "not_open")
        # A refusal (no right, no room, out of bounds) goes to the person as it is; the step stays recommended.
        decision.job = request_step(actor, decision)
        decision.state, decision.error = Decision.State.APPLIED, ""
        decision.decided_by, decision.decided_at = actor.user, timezone.now()
        decision.save(update_fields=["state", "job", "error", "decided_by", "decided_at"])
        started_shrink_cooldown([decision])
        tell_pages([(decision.host_id, decision.domain_id)])
    return decision


@services.audit_refusals("autoscaler.approve")
def approve_plan(actor: Actor, host: Host, shown: list[int] | None = None) -> list[Decision]:
    """A person approves every step recommended on a host, in the plan's order (shrinks, migrations, grows), each
    a job created as theirs. A step that needs room its approved shrinks are freeing waits for them and is sent
    as theirs when they end; a step refused for room or bounds stays recommended and says why (`error`). A
    refusal of the person's rights refuses the whole plan: nothing is approved (and the refusal is audited)."""
    with transaction.atomic():
        steps = list(
            Decision.objects.select_for_update(of=("self",)).select_related("host", "domain", "to_host")
            .filter(host_id=host.pk, state=Decision.State.RECOMMENDED)
        )
        steps.sort(key=lambda step: step.plan_order)
        if not steps:
            raise services.Conflict(f"nothing to approve: no step waits for approval on {host.name}", "not_open")
        if shown is not None and sorted(shown) != sorted(step.pk for step in steps):
            # The autoscaler planned again since the page was drawn: approving would approve steps nobody saw.
            raise services.Conflict(
                f"nothing was approved: the plan for {host.name} changed since it was shown; look at it again", "plan_changed"
            )
        services.lock_hosts([step.host_id for step in steps] + [step.to_host_id for step in steps if step.to_host_id])
        shrinking: set[int] = set()
        decided_at = timezone.now()
        for decision in steps:
            room_coming = decision.to_host_id if decision.step_kind == MIGRATE else decision.host_id
            try:
                decision.job = request_step(actor, decision)
                decision.state, decision.error = Decision.State.APPLIED, ""
            except services.ServiceError as exc:
                if exc.status in (403, 404):
                    raise
                waits = exc.code == "no_room" and room_coming in shrinking
                decision.state = Decision.State.WAITING if waits else Decision.State.RECOMMENDED
                decision.error = exc.message
            if decision.state == Decision.State.APPLIED and decision.is_shrink:
                shrinking.add(decision.host_id)
            if decision.state != Decision.State.RECOMMENDED:
                decision.decided_by, decision.decided_at = actor.user, decided_at
        Decision.objects.bulk_update(steps, ["state", "job", "error", "decided_by", "decided_at"])
        started_shrink_cooldown([d for d in steps if d.state == Decision.State.APPLIED])
        send_when_shrinks_end(steps)
        tell_pages([(d.host_id, d.domain_id) for d in steps])
    return steps


@services.audit_refusals("autoscaler.dismiss")
def dismiss(actor: Actor, decision: Decision) -> Decision:
    with transaction.atomic():
        decision = Decision.objects.select_for_update(of=("self",)).select_related("domain__host", "host").get(pk=decision.pk)
        services.check_permission(actor, "migrate" if decision.step_kind == MIGRATE else "resize", decision.domain or decision.host)
        if decision.state != Decision.State.RECOMMENDED:
            raise services.Conflict(f"this step is {decision.get_state_display()}: only a recommended step can be dismissed", "not_open")
        decision.state, decision.decided_by, decision.decided_at = Decision.State.DISMISSED, actor.user, timezone.now()
        decision.save(update_fields=["state", "decided_by", "decided_at"])
        record(actor, "autoscaler.dismiss", decision.domain or decision.host, result=AuditEntry.Result.SUCCEEDED,
               before={"step": decision.reason})
        tell_pages([(decision.host_id, decision.domain_id)])
    return decision


POLICY_RULES = {
    # model: (the object's permission, {field: (lowest, highest)}); modes are checked against their choices.
    TeamPolicy: ("manage_team", {}),
    HostPolicy: ("manage_host", {"target_use": (0.5, 1.0), "migrations_in": (0, 20), "migrations_out": (0, 20), "migrations_per_hour": (0, 1000)}),
    DomainPolicy: ("set_floor", {"free_share": (0.0, 0.9), "deadband_share": (0.0, 0.5), "priority": (-100, 100),
                                 "shrink_cooldown_s": (0.0, 86400.0), "migrate_cooldown_s": (0.0, 7 * 86400.0)}),
}


@services.audit_refusals("autoscaler.policy")
def set_policy(actor: Actor, obj, **values):
    """Change the autoscaling policy of a team, host or domain (admins): audited, and a new policy revision, so
    that the jobs the autoscaler creates afterwards name the rules they followed."""
    model = {"team": TeamPolicy, "host": HostPolicy, "domain": DomainPolicy}[obj._meta.model_name]
    action, bounds = POLICY_RULES[model]
    for name, value in values.items():
        if name == "mode":
            choices = Mode.values if model is TeamPolicy else [c for c, _ in HostPolicy._meta.get_field("mode").choices]
            if model is DomainPolicy or not isinstance(value, str) or value not in choices:
                raise services.BadRequest(f"mode must be one of {', '.join(choices)}", "bad_policy")
        elif name not in bounds:
            raise services.BadRequest(f"{name} is not a setting of this policy", "bad_policy")
        else:
            values[name] = _policy_number(model, name, value, *bounds[name])
    with transaction.atomic():
        services.check_permission(actor, action, obj)
        policy, _ = model.objects.select_for_update().get_or_create(**{obj._meta.model_name: obj})
        before = {name: getattr(policy, name) for name in values}
        for name, value in values.items():
            setattr(policy, name, value)
        policy.save()
        EngineState.get()
        EngineState.objects.filter(pk=1).update(revision=F("revision") + 1)
        record(actor, "autoscaler.policy", obj, result=AuditEntry.Result.SUCCEEDED, before=before, after=values)
    return policy


def _policy_number(model, name: str, value, lowest, highest) -> int | float:
    """A setting as a number within its bounds, whole where the field is (the API takes JSON numbers or, from a
    form, their text)."""
    whole = isinstance(model._meta.get_field(name), IntegerField)
    allowed = f"{name} must be a {'whole ' if whole else ''}number from {lowest} to {highest}"
    try:
        number = float(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else math.nan
    except (ValueError, OverflowError):
        number = math.nan
    if not lowest <= number <= highest or (whole and not number.is_integer()):
        raise services.BadRequest(f"{allowed}, not {str(value)[:40]!r}", "bad_policy")
    return int(number) if whole else number


def what_if(actor: Actor, memory_kib: int, maxmem_kib: int, name: str = "new") -> WhatIf:
    """"Make room for one more", over the hosts the actor may see."""
    context = build_snapshot()
    visible = set(rules.restrict(Host.objects.all(), actor, "view").values_list("pk", flat=True))
    snapshot = context.snapshot
    hosts = [h for h in snapshot.hosts if h.id in visible]
    domains = [d for d in snapshot.domains if d.host_id in visible]
    # A superuser's new domain is not bound by team quotas; anyone else's is (services.check_delegation).
    quota_left = {} if actor.is_privileged else snapshot.quota_left_kib
    new = NewDomain(name, memory_kib, maxmem_kib)
    return make_room(engine.Snapshot(hosts, domains, snapshot.now, snapshot.policy_version, quota_left), new)


def apply_what_if(actor: Actor, answer: WhatIf) -> list[Decision]:
    """Carry out a what-if's steps (not the placement itself: the caller creates the domain) as the actor."""
    at = timezone.now()
    version = EngineState.get().policy_version
    decisions = []
    shrinking: set[int] = set()
    for step in answer.plan.steps:
        if step.kind == PLACE:
            continue
        decision = _step_decision(step, Mode.AUTOMATIC, version, at)
        apply_step(actor, decision, waits_for_shrinks=(step.to_host_id or step.host_id) in shrinking)
        if decision.state == Decision.State.APPLIED and step.is_shrink:
            shrinking.add(step.host_id)
        decision.decided_by, decision.decided_at = actor.user, at
        decisions.append(decision)
    Decision.objects.bulk_create(decisions)
    send_when_shrinks_end(decisions)
    return decisions
