"""Fixtures for the page tests: fleets made straight in the database (no hypervisor needed to render a page),
and people in a team with each role, plus an outsider."""

import uuid

import pytest
from django.contrib.auth.models import User

from balloonweb.access.models import Membership, Team
from domains.models import Domain
from hosts.models import Host

GIB = 1024 * 1024  # KiB


def make_fleet(hosts: int, domains_per_host: int, team: Team | None = None) -> list[Host]:
    """`hosts` online hosts of 64 GiB, each with running domains of 1 GiB (maxmem 4 GiB) and balloon figures."""
    made = Host.objects.bulk_create(
        Host(
            name=f"host{i:04d}", uri=f"test:///nowhere/{i}", team=team, status=Host.Status.ONLINE,
            total_kib=64 * GIB, capacity_kib=64 * GIB, reserved_kib=GIB, cpus=16,
        )
        for i in range(hosts)
    )
    made = list(Host.objects.filter(name__in=[h.name for h in made]).order_by("name"))
    Domain.objects.bulk_create(
        Domain(
            host=host, name=f"{host.name}-vm{j:04d}", uuid=uuid.uuid4(), hv_id=j + 1, state=Domain.State.RUNNING,
            vcpus=1 + j % 4, memory_kib=GIB, maxmem_kib=4 * GIB, config_memory_kib=GIB, config_maxmem_kib=4 * GIB,
            floor_kib=128 * 1024, actual_kib=GIB, available_kib=GIB * 97 // 100, unused_kib=(j % 7) * 100 * 1024,
            usable_kib=(j % 7) * 100 * 1024, cpu_time_ns=j * 10**9,
        )
        for host in made
        for j in range(domains_per_host)
    )
    return made


@pytest.fixture
def team(db) -> Team:
    return Team.objects.create(name="blue")


@pytest.fixture
def other_team(db) -> Team:
    return Team.objects.create(name="green")


def member(team: Team, role: str, name: str | None = None) -> User:
    user = User.objects.create_user(name or f"{team.name}-{role}", password="correct horse battery")
    Membership.objects.create(user=user, team=team, role=role)
    return user


@pytest.fixture
def people(team, other_team) -> dict[str, User]:
    return {
        "viewer": member(team, Membership.Role.VIEWER),
        "operator": member(team, Membership.Role.OPERATOR),
        "admin": member(team, Membership.Role.ADMIN),
        "outsider": member(other_team, Membership.Role.ADMIN),
    }


@pytest.fixture
def small_fleet(team) -> dict:
    """One team host with one running domain `foo` (1024 MiB, maxmem 4096 MiB), and a second team host."""
    hv1, hv2 = make_fleet(2, 0, team)
    foo = Domain.objects.create(
        host=hv1, name="foo", uuid=uuid.uuid4(), hv_id=1, state=Domain.State.RUNNING, vcpus=1,
        memory_kib=GIB, maxmem_kib=4 * GIB, config_memory_kib=GIB, config_maxmem_kib=4 * GIB, floor_kib=128 * 1024,
    )
    return {"hv1": hv1, "hv2": hv2, "foo": foo}
