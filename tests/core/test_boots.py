"""Which observations are a domain's boot (inventory.started_again): what the autoscaler's balloon watch needs."""

import uuid

import pytest

from domains import inventory
from domains.models import Domain
from hosts.drivers import DomainStats
from hosts.models import Host

pytestmark = pytest.mark.django_db

GiB = 1024 * 1024


def seen(state: str = "running", hv_id: int = 7, cpu_time_ns: int = 10**10) -> DomainStats:
    return DomainStats(
        uuid=uuid.UUID(int=1), name="foo", hv_id=hv_id, state=state, vcpus=1, memory_kib=GiB, maxmem_kib=2 * GiB,
        cpu_time_ns=cpu_time_ns, actual_kib=GiB, unused_kib=None, available_kib=None, usable_kib=None, rss_kib=None,
        last_update=None,
    )


@pytest.fixture
def hosts() -> tuple[Host, Host]:
    return tuple(Host.objects.create(name=n, uri=f"test:///{n}", total_kib=8 * GiB) for n in ("hv1", "hv2"))


def running_on(host: Host) -> Domain:
    return Domain.objects.create(host=host, name="foo", uuid=uuid.UUID(int=1), hv_id=7, state="running",
                                 cpu_time_ns=5 * 10**9, memory_kib=GiB, maxmem_kib=2 * GiB)


def test_a_new_process_on_the_same_host_is_a_boot(hosts):
    hv1, _ = hosts
    domain = running_on(hv1)
    assert not inventory.started_again(domain, hv1, seen(cpu_time_ns=6 * 10**9))  # still running
    assert inventory.started_again(domain, hv1, seen(hv_id=8))  # another hypervisor id
    assert inventory.started_again(domain, hv1, seen(cpu_time_ns=10**9))  # its CPU time went back
    assert not inventory.started_again(domain, hv1, seen(state="shutoff", hv_id=-1))
    domain.state = "shutoff"
    assert inventory.started_again(domain, hv1, seen())  # started


def test_a_migration_is_not_a_boot(hosts):
    hv1, hv2 = hosts
    domain = running_on(hv1)
    assert not inventory.started_again(domain, hv2, seen(hv_id=1, cpu_time_ns=10**8))


def test_the_boot_is_written_with_the_observation(hosts):
    hv1, _ = hosts
    domain = running_on(hv1)
    inventory.apply_observation(domain, hv1, seen(hv_id=9), "2026-11-27T21:00:00Z")
    assert domain.booted_at == "2026-11-27T21:00:00Z" and "booted_at" in inventory.OBSERVED_FIELDS
