"""The QEMU lab for the tests marked `lab`: two libvirtd hosts with one real TCG guest each.

The daemons and guests start once per session (about 15 s; the first run on a machine also downloads the
68 MB kernel package) and are removed at its end. Each test gets them registered as hosts lab1 and lab2,
with each guest on its home host at its full 512 MiB.
"""

import pytest

from domains.models import Domain
from domains.poller import poll_hosts
from hosts.drivers import driver_for
from hosts.lab import console, setup
from hosts.lab.guest import MAXMEM_MIB
from hosts.lab.migration import migration_options
from hosts.models import Host

# A steady 32 MiB: the checks of MemTotal and the balloon must not race a workload that grows and shrinks.
QUIET_DEMAND = "3600:32"
FULL_KIB = MAXMEM_MIB * 1024


# Each guest's MemTotal at its full 512 MiB, as it reported it after booting.
FULL_MEMTOTAL_KIB: dict[str, int] = {}


@pytest.fixture(scope="session")
def lab():
    setup.stop()  # a fresh lab, whatever an interrupted run left behind
    hosts = setup.start(demand=QUIET_DEMAND)
    for guest in setup.guests(QUIET_DEMAND):
        FULL_MEMTOTAL_KIB[guest.name] = console.last_report(setup.guest_console(guest.uuid)).memtotal_kib
    yield hosts
    setup.stop()


def put_guests_home(hosts) -> None:
    """Undo what a failed test may have left: a guest on the other host, or ballooned. A no-op otherwise."""
    for guest in setup.guests(QUIET_DEMAND):
        home = hosts[guest.host_name]
        now_on = setup.where(guest.uuid)
        if now_on is not None and now_on.name != home.name:
            options = migration_options(now_on.uri, home.uri, guest.uuid)
            driver_for(now_on.uri).migrate(guest.uuid, driver_for(home.uri), **options)
        driver = driver_for(home.uri)
        driver.set_memory(guest.uuid, FULL_KIB, live=True, config=False)
        driver.wait_for_balloon_to_settle(guest.uuid)
        # Every guest runs the same kernel: at full size they all report the MemTotal they booted with.
        full = FULL_MEMTOTAL_KIB[guest.name]
        console.wait_for_report(setup.guest_console(guest.uuid), lambda r, full=full: r.memtotal_kib == full, 30)


@pytest.fixture
def lab_hosts(lab, transactional_db) -> dict[str, Host]:
    """lab1 and lab2 registered, online, with their guests' Domain rows from a first poll."""
    put_guests_home(lab)
    hosts = setup.register_hosts(lab.values())
    poll_hosts(hosts)
    return {host.name: host for host in hosts}


@pytest.fixture
def labvm1(lab_hosts) -> Domain:
    return Domain.objects.get(name="labvm1")


@pytest.fixture
def labvm2(lab_hosts) -> Domain:
    return Domain.objects.get(name="labvm2")


def guest_report(domain: Domain, accept=lambda _r: True, timeout_s: float = 30) -> console.GuestReport:
    """The guest's own latest report that `accept` takes, from the console of whichever host runs it now."""
    return console.wait_for_report(setup.guest_console(str(domain.uuid)), accept, timeout_s)
