"""People of every role in a team with two hosts, API clients that carry their tokens, and domains written
straight into the database (for the tests that need no hypervisor)."""

import uuid

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from balloonweb.access.actors import Actor
from balloonweb.access.models import Membership, Team
from balloonweb.api import tokens
from domains.models import Domain
from hosts.models import Host

ROLES = ("viewer", "operator", "admin")
MIB = 1024


def make_token(user, *, write: bool = True, expires=None) -> str:
    return tokens.create_token(Actor.system("tests"), user, f"{user.username}-{'rw' if write else 'ro'}", write=write, expires=expires)[1]


def client_with(token_text: str | None) -> APIClient:
    client = APIClient()
    if token_text:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_text}")
    return client


@pytest.fixture
def team(db) -> Team:
    return Team.objects.create(name="blue")


@pytest.fixture
def people(team) -> dict:
    """viewer, operator and admin of team blue; an outsider (admin of another team); a superuser."""
    users = get_user_model().objects
    found = {role: users.create_user(role, password="pw-" + role) for role in ROLES}
    for role in ROLES:
        Membership.objects.create(user=found[role], team=team, role=role)
    other = Team.objects.create(name="red")
    found["outsider"] = users.create_user("outsider", password="pw-outsider")
    Membership.objects.create(user=found["outsider"], team=other, role="admin")
    found["root"] = users.create_superuser("root", password="pw-root")
    return found


@pytest.fixture
def as_(people):
    """as_("operator") -> an API client with a read-write token of that person; as_("viewer", write=False)."""

    def client(who: str, write: bool = True) -> APIClient:
        return client_with(make_token(people[who], write=write))

    return client


def fake_host(name: str, team: Team | None, memory_mib: int = 8192, reserve_mib: int = 512, status: str = "online") -> Host:
    return Host.objects.create(name=name, uri=f"test:///{name}", team=team, status=status,
                               total_kib=memory_mib * MIB, capacity_kib=memory_mib * MIB, reserved_kib=reserve_mib * MIB)


def fake_domain(host: Host, name: str, memory_mib: int = 1024, maxmem_mib: int = 4096, state: str = "running", **extra) -> Domain:
    return Domain.objects.create(
        host=host, name=name, uuid=uuid.uuid4(), state=state, memory_kib=memory_mib * MIB, maxmem_kib=maxmem_mib * MIB,
        config_memory_kib=memory_mib * MIB, config_maxmem_kib=maxmem_mib * MIB, floor_kib=128 * MIB,
        actual_kib=memory_mib * MIB, **extra,
    )


@pytest.fixture
def fleet(team) -> dict:
    """Hosts h1, h2 of team blue and r1 of team red (8 GiB, 512 MiB reserve each); domain foo on h1 as the seed's."""
    red = Team.objects.get_or_create(name="red")[0]
    hosts = {"h1": fake_host("h1", team), "h2": fake_host("h2", team), "r1": fake_host("r1", red)}
    return {**hosts, "foo": fake_domain(hosts["h1"], "foo"), "secret": fake_domain(hosts["r1"], "secret")}
