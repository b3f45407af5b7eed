"""Starting and stopping simulated hosts as BalloonWeb hosts: the daemon, the Host row, and its domains."""

import uuid

from django.db import transaction

from hosts.drivers import DomainConfig, driver_for
from hosts.models import Host

from . import fleet

DEFAULT_MEMORY_MIB = 16384
DEFAULT_RESERVE_MIB = 512
DEFAULT_CPUS = 16

# The demo fleet of the run command: the seed's `foo` and a few neighbours with different demand profiles.
DEMO_HOSTS = {"hv1": 8192, "hv2": 12288}  # room on hv2 for foo at its maxmem: the walkthrough moves it there
# The demo's migration link: foo at 1 GiB moves in 2 s, so a move's progress shows and it can be stopped.
DEMO_MIGRATION_MIB_S = 512


def demo_uuid(name: str) -> str:
    """The same UUID for a demo domain at every start: the run command removes the simulated hosts when it stops,
    and a domain defined again under a new UUID would leave its row, history and decisions behind as "gone"."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://balloonweb.invalid/demo/{name}"))


DEMO_DOMAINS = [
    (host, DomainConfig(name, memory, maxmem, vcpus, uuid=demo_uuid(name), description=demand))
    for host, name, memory, maxmem, vcpus, demand in [
        ("hv1", "foo", 1024 * 1024, 4096 * 1024, 1, "demand: steady 400M"),
        ("hv1", "web1", 1536 * 1024, 3072 * 1024, 2, "demand: diurnal 900M"),
        ("hv1", "batch1", 2048 * 1024, 4096 * 1024, 2, "demand: spike 800M"),
        ("hv2", "db1", 3072 * 1024, 6144 * 1024, 4, "demand: ramp 1500M"),
        ("hv2", "idle1", 2048 * 1024, 2048 * 1024, 1, "demand: idle 1G"),
    ]
]


def start(name: str, *, memory_mib: int = DEFAULT_MEMORY_MIB, reserve_mib: int = DEFAULT_RESERVE_MIB, cpus: int = DEFAULT_CPUS,
          team=None, migration_mib_s: int | None = None) -> Host:
    """Start (or restart) a simulated host and register it; after a restart its saved domains boot again."""
    sim = fleet.simhost(name)
    sim.describe(memory_mib=memory_mib, cpus=cpus, migration_mib_s=migration_mib_s)
    fleet.start_daemon(sim)
    with transaction.atomic():
        host, _ = Host.objects.update_or_create(
            name=name,
            defaults={"uri": sim.uri, "reserved_kib": reserve_mib * 1024},
        )
        if team is not None and host.team_id != getattr(team, "pk", team):
            host.team_id = getattr(team, "pk", team)
            host.save(update_fields=["team"])  # through the model, so that the audit log records it (signals)
    from domains.poller import poll_hosts

    poll_hosts([host])
    host.refresh_from_db()
    return host


def stop(name: str) -> None:
    fleet.remove(fleet.simhost(name))


def stop_all() -> list[str]:
    names = [sim.name for sim in fleet.all_simhosts()]
    for name in names:
        stop(name)
    return names


DEMO_TEAM = "ops"
DEMO_ADMIN = "admin"  # the superuser that ensure_admin creates before the run command starts the demo


def demo_team():
    """The team "ops" owning the demo hosts, with `admin` as its admin, in recommend mode. A team, because the
    autoscaler acts as an operator of a host's team; recommend, so that a person sees the plan (on the host page)
    before anything changes, and `foo` stays at 1024 MiB until someone acts. A later change by a person stays."""
    from django.contrib.auth import get_user_model

    from balloonweb.access.models import Membership, Team
    from domains.autoscaler.models import Mode, TeamPolicy

    team, _ = Team.objects.get_or_create(name=DEMO_TEAM)
    admin = get_user_model().objects.filter(username=DEMO_ADMIN).first()
    if admin is not None:
        Membership.objects.get_or_create(user=admin, team=team, defaults={"role": Membership.Role.ADMIN})
    TeamPolicy.objects.get_or_create(team=team, defaults={"mode": Mode.RECOMMEND})
    return team


def start_demo() -> list[Host]:
    """hv1 and hv2 of the team "ops" (recommend mode) with `foo` (1024 MiB, maxmem 4096 MiB) and a few others."""
    from domains.inventory import record_domain

    team = demo_team()
    hosts = {name: start(name, memory_mib=memory, team=team, migration_mib_s=DEMO_MIGRATION_MIB_S) for name, memory in DEMO_HOSTS.items()}
    for host_name, config in DEMO_DOMAINS:
        host = hosts[host_name]
        driver = driver_for(host.uri)
        if any(d.name == config.name for d in driver.list_domains()):
            continue
        record_domain(host, driver.define_and_start(config))
    return list(hosts.values())
