"""A small world for access tests, in the database only (no hypervisor): two teams, A and B.

Team A has host a1 (domain `da`, running, 1024 of 4096 MiB) and a job on it; team B has host b1. Users: `viewer`,
`operator` and `admin` in team A; `outsider` is an admin of team B only (an admin elsewhere is still an outsider
here); `root` is a superuser.
"""

import uuid
from dataclasses import dataclass

import pytest
import redis
from django.contrib.auth import get_user_model
from django.conf import settings
from django.test import Client

from balloonweb.access.models import Membership, Team
from domains.models import Domain, Job
from hosts.models import Host

MiB = 1024
PASSWORD = "correct horse battery staple"
ROLES = ("anonymous", "outsider", "viewer", "operator", "admin", "superuser")


@dataclass
class World:
    team_a: Team
    team_b: Team
    a1: Host
    a2: Host
    b1: Host
    da: Domain
    job: Job
    users: dict
    memberships: dict

    def client(self, role: str) -> Client:
        client = Client()
        if role != "anonymous":
            client.force_login(self.users[role])
        return client


def make_host(name: str, team: Team | None) -> Host:
    return Host.objects.create(
        name=name, uri=f"test:///{name}", team=team, status=Host.Status.ONLINE,
        total_kib=8192 * MiB, reserved_kib=512 * MiB, cpus=4,
    )


def make_domain(host: Host, name: str, memory_mib: int = 1024, maxmem_mib: int = 4096) -> Domain:
    return Domain.objects.create(
        host=host, name=name, uuid=uuid.uuid4(), state=Domain.State.RUNNING, vcpus=1,
        memory_kib=memory_mib * MiB, maxmem_kib=maxmem_mib * MiB,
        config_memory_kib=memory_mib * MiB, config_maxmem_kib=maxmem_mib * MiB, floor_kib=128 * MiB,
    )


def build_world() -> World:
    users_model = get_user_model()
    team_a, team_b = Team.objects.create(name="A"), Team.objects.create(name="B")
    a1, a2, b1 = make_host("a1", team_a), make_host("a2", team_a), make_host("b1", team_b)
    da = make_domain(a1, "da")
    job = Job.objects.create(kind=Job.Kind.RESIZE, domain=da, host=a1, params={"target_kib": 1024 * MiB},
                             actor_kind="cli", actor_label="command line")
    users = {name: users_model.objects.create_user(name, password=PASSWORD) for name in ("outsider", "viewer", "operator", "admin")}
    users["superuser"] = users_model.objects.create_superuser("root", password=PASSWORD)
    memberships = {
        "outsider": Membership.objects.create(user=users["outsider"], team=team_b, role=Membership.Role.ADMIN),
        **{role: Membership.objects.create(user=users[role], team=team_a, role=role) for role in ("viewer", "operator", "admin")},
    }
    return World(team_a, team_b, a1, a2, b1, da, job, users, memberships)


@pytest.fixture
def world(db) -> World:
    return build_world()


@pytest.fixture
def live_world(transactional_db) -> World:
    """The same, committed: for threads, WebSocket consumers and worker processes, which read other connections."""
    return build_world()


def forget_login_failures() -> None:
    """Drop the login counters only (cache.clear() would flush the whole Redis database, queues included)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = list(client.scan_iter(match=f"{settings.CACHES['default']['KEY_PREFIX']}:*login-fail:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture(autouse=True)
def _forget_login_failures():
    forget_login_failures()
    yield
    forget_login_failures()
