"""Adding, changing and removing hosts, for every entrance (pages, API, command line).

The fleet's owner (a superuser) adds and removes hosts, gives each to a team and picks its queue group: a host is
infrastructure, reached with the server's own credentials (an ssh key for qemu+ssh://), and whose team it is
decides whose quota its domains count in. A team's admins set the memory their host hands out: the reserve the
host keeps for itself and, for a deliberate overcommit or a partial share, a capacity below what the hypervisor
reports. The name and the URI are fixed: another machine is another host (remove it and add the new one).

The entries of these changes (host.add, host.update, host.remove) are written by balloonweb.access.signals,
whatever the path, as the current actor; refusals of people are audited here (audit_refusals). BalloonWeb
connects to a new host at its next poll, and its card on the fleet page says whether it answered.
"""

import re

from django.db import IntegrityError, transaction

from balloonweb.access.actors import Actor
from balloonweb.access.models import Team
from balloonweb.audit.log import record
from balloonweb.audit.models import AuditEntry
from balloonweb.ids import as_id
from balloonweb.live.publish import publish
from hosts.models import RUNNING_STATES, Host
from hosts.units import BadSize, format_mib, parse_memory_kib

from .models import Domain, Job
from .services import BadRequest, Conflict, Forbidden, announce_host, audit_refusals, booked_kib, check_permission, locked_host

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# The hypervisors BalloonWeb balloons and migrates through, over libvirt's transports (test is the simulated one).
# Not +ext, nor a `command=` parameter: they run a program on this server, which a web form must not choose.
URI = re.compile(r"^(qemu|xen|test)(\+(ssh|libssh|libssh2|tcp|tls|unix))?://\S{0,480}$")
URI_EXAMPLES = "qemu:///system, qemu+ssh://root@hv3/system or xen+ssh://root@hv3/"
DEFAULT_RESERVE_KIB = 512 * 1024
QUEUE_GROUP_MAX = Host._meta.get_field("queue_group").max_length
# A host's settings as every entrance names them (pages, API, xm); the name and the URI are fixed. A team's
# admins change the first two, the fleet owner all of them.
SETTINGS = ("reserved", "capacity", "team", "queue_group")


def parse_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME.match(name):
        raise BadRequest(
            f"{name!r} is not a host name: use up to 100 letters, digits, dots, dashes and underscores, starting with a "
            "letter or a digit", "bad_name",
        )
    return name


def parse_uri(uri: str) -> str:
    uri = (uri or "").strip()
    if not URI.match(uri) or "command=" in uri:
        raise BadRequest(f"{uri!r} is not a libvirt URI of a hypervisor BalloonWeb drives; use {URI_EXAMPLES}", "bad_uri")
    return uri


def parse_reserve(size: str | int | None) -> int:
    """The host's own memory; 0 is allowed (a host whose capacity already leaves it room)."""
    if size in (None, ""):
        return DEFAULT_RESERVE_KIB
    if str(size).strip() == "0":
        return 0
    try:
        return parse_memory_kib(size)
    except BadSize as exc:
        raise BadRequest(f"reserve: {exc}, or 0", "bad_size") from exc


def parse_capacity(size: str | int | None) -> int | None:
    """None (empty): all the memory the hypervisor reports."""
    if size in (None, ""):
        return None
    try:
        return parse_memory_kib(size)
    except BadSize as exc:
        raise BadRequest(f"capacity: {exc}, or nothing for all the memory the hypervisor reports", "bad_size") from exc


def parse_queue_group(group: str | None) -> str:
    group = (group or "").strip()
    if group and not (NAME.match(group) and len(group) <= QUEUE_GROUP_MAX):
        raise BadRequest(
            f"{group!r} is not a queue group: up to {QUEUE_GROUP_MAX} letters, digits, dots, dashes and underscores",
            "bad_queue_group",
        )
    return group


def find_team(name_or_id: str | int | None) -> Team | None:
    """A team by name or id; None (empty) for no team, where only superusers see the host."""
    if name_or_id in (None, ""):
        return None
    text = str(name_or_id).strip()
    team_id = as_id(text)
    # A name first: a team may be called "2024", and the pages send names.
    team = Team.objects.filter(name=text).first()
    if team is None and team_id is not None:
        team = Team.objects.filter(pk=team_id).first()
    if team is None:
        raise BadRequest(f"there is no team {text}; give a team's name or id, or nothing for no team", "no_such_team")
    return team


def _names_team(given: str | int | None, team: Team | None) -> bool:
    """Whether `given` (a name, an id, or nothing for no team) names `team`."""
    text = str(given if given is not None else "").strip()
    return text == "" if team is None else text in (team.name, str(team.pk))


def _require_owner(actor: Actor, what: str) -> None:
    if not actor.is_privileged:
        raise Forbidden(f"only a superuser {what}: hosts are the fleet owner's to give to teams")


def _check_memory_fits(host: Host) -> None:
    """A new reserve or capacity must still hold what the host runs and has booked: the services never
    double-book a host, and this change must not do it either."""
    if (host.capacity_kib or host.total_kib) and not host.usable_kib:
        raise BadRequest(
            f"a reserve of {format_mib(host.reserved_kib)} is all of {host.name}'s "
            f"{format_mib(host.capacity_kib or host.total_kib)}: nothing would be left for domains", "bad_size",
        )
    booked = booked_kib(host)
    if booked > host.usable_kib:
        raise Conflict(
            f"{host.name} has {format_mib(booked)} running or booked: a capacity of "
            f"{format_mib(host.capacity_kib or host.total_kib)} with a reserve of {format_mib(host.reserved_kib)} leaves "
            f"{format_mib(host.usable_kib)}; shrink or move domains first", "overbooked",
        )


def add_host(actor: Actor, name: str, uri: str, *, team: str | int | None = None, reserved: str | None = None,
             capacity: str | None = None, queue_group: str = "") -> Host:
    """Register a hypervisor; BalloonWeb connects to it at its next poll."""
    try:
        _require_owner(actor, "adds hosts")
        name, uri = parse_name(name), parse_uri(uri)
        fields = {
            "team": find_team(team), "reserved_kib": parse_reserve(reserved), "capacity_kib": parse_capacity(capacity),
            "queue_group": parse_queue_group(queue_group),
        }
        taken = Conflict(f"a host named {name} already exists", "name_taken")
        with transaction.atomic():
            if Host.objects.filter(name=name).exists():
                raise taken
            if (same := Host.objects.filter(uri=uri).first()) is not None:
                raise Conflict(f"{same.name} already has the URI {uri}: a hypervisor is added once", "uri_taken")
            try:
                with transaction.atomic():
                    host = Host.objects.create(name=name, uri=uri, status=Host.Status.OFFLINE, **fields)
            except IntegrityError:
                raise taken from None  # added by someone else since the check above
    except Forbidden as refusal:
        record(actor, "host.add", result=AuditEntry.Result.REFUSED, message=refusal.message)
        raise
    publish("fleet", host.team_id, {"type": "hosts", "hosts": [host.pk]})
    return host


@audit_refusals("host.update")
def change_host(actor: Actor, host: Host, **changes: str | int | None) -> Host:
    """Change some of: reserved, capacity (a team's admins); team, queue_group (superusers)."""
    unknown = set(changes) - set(SETTINGS)
    if unknown:
        raise BadRequest(f"{', '.join(sorted(unknown))} cannot be changed; the name and the URI are fixed", "not_changeable")
    with transaction.atomic():
        host = locked_host(host.pk)
        check_permission(actor, "manage_host", host)
        before_team = host.team_id
        if "reserved" in changes:
            host.reserved_kib = parse_reserve(changes["reserved"])
        if "capacity" in changes:
            host.capacity_kib = parse_capacity(changes["capacity"])
        if "team" in changes and not _names_team(changes["team"], host.team):
            # Before the lookup: which teams exist is not for a team admin to learn from "there is no team X".
            _require_owner(actor, "gives a host to another team")
            host.team = find_team(changes["team"])
        if "queue_group" in changes:
            group = parse_queue_group(changes["queue_group"])
            if group != host.queue_group:
                _require_owner(actor, "moves a host to another queue group")
                host.queue_group = group
        _check_memory_fits(host)
        host.save()
    announce_host(host, before_team)
    return host


@audit_refusals("host.remove")
def remove_host(actor: Actor, host: Host) -> str:
    """Forget a host that runs nothing: its shut-off domains, jobs and decisions go with it (the audit log keeps
    what happened); the hypervisor itself is not touched. Returns what was forgotten, in words."""
    with transaction.atomic():
        host = locked_host(host.pk)
        check_permission(actor, "view", host)
        _require_owner(actor, "removes hosts")
        running = list(Domain.objects.present().filter(host=host, state__in=RUNNING_STATES).values_list("name", flat=True)[:5])
        if running:
            raise Conflict(
                f"{host.name} still runs {', '.join(running)}: migrate them away first (maintenance does it for all)",
                "host_not_empty",
            )
        busy = Job.objects.filter(state__in=Job.UNFINISHED).filter(host=host).exists() or Job.objects.filter(
            state__in=Job.UNFINISHED, target_host=host).exists()
        if busy:
            raise Conflict(f"{host.name} has jobs queued or running; wait for them to end", "host_busy")
        stopped = Domain.objects.present().filter(host=host).count()
        team_id, name, host_id = host.team_id, host.name, host.pk
        host.delete()
    publish("fleet", team_id, {"type": "hosts", "hosts": []})
    # Its page, and its domains' pages, listen on its group: they reconnect, are refused, and say so.
    publish("host", host_id, {"type": "close", "reason": "host removed"})
    if stopped:
        return f"{name} removed, with the {stopped} shut-off domain{'s' if stopped != 1 else ''} BalloonWeb knew there (still defined on the hypervisor)"
    return f"{name} removed"
