"""The libvirt driver against the real test driver: in process (test:///default) and through libvirtd."""

import uuid

import pytest

from hosts.drivers import AboveMaxMemory, DomainConfig, DriverError, DomainNotRunning, HostUnreachable, InvalidRequest, NotSupported, driver_for
from hosts.drivers.libvirt_driver import LibvirtDriver
from hosts.simulation import fleet


@pytest.fixture(params=["in-process", "libvirtd"])
def driver(request, tmp_path):
    if request.param == "in-process":
        # A custom node file gives this test its own world, since test:///default is shared within a process.
        node = tmp_path / "node.xml"
        node.write_text("<node><cpu><mode>host</mode></cpu><memory>8388608</memory></node>")
        yield LibvirtDriver(f"test://{node}")
    else:
        sim = fleet.simhost(f"drv{uuid.uuid4().hex[:6]}")
        fleet.start_daemon(sim)
        yield LibvirtDriver(sim.uri)
        fleet.remove(sim)


def define(driver, name="foo", memory=1024, maxmem=4096):
    return driver.define_and_start(DomainConfig(name, memory * 1024, maxmem * 1024, 1))


def test_define_resize_and_read_back(driver):
    info = define(driver)
    assert (info.state, info.memory_kib, info.maxmem_kib) == ("running", 1024 * 1024, 4096 * 1024)
    driver.set_memory(info.uuid, 512 * 1024, live=True, config=False)
    assert driver.domain(info.uuid).memory_kib == 512 * 1024
    stats = {s.uuid: s for s in driver.bulk_stats()}
    assert stats[info.uuid].memory_kib == 512 * 1024


def test_above_maxmem_names_the_maxmem(driver):
    info = define(driver)
    with pytest.raises(AboveMaxMemory) as error:
        driver.set_memory(info.uuid, 5000 * 1024, live=True, config=False)
    assert "4,096 MiB" in str(error.value) and "maxmem" in str(error.value)
    assert driver.domain(info.uuid).memory_kib == 1024 * 1024


def test_a_creation_that_fails_leaves_nothing_on_the_host(driver):
    """Defined, then refused at its size (the services never ask this; the hypervisor is what refuses here): the
    domain is removed again, so that no poll finds a domain no job created. One that was there before stays."""
    with pytest.raises(InvalidRequest, match="cannot set memory higher than max memory"):
        define(driver, "half", memory=2048, maxmem=1024)
    assert [d.name for d in driver.list_domains() if d.name == "half"] == []
    define(driver, "kept")
    with pytest.raises(DriverError, match="domain 'kept' already exists"):
        define(driver, "kept", memory=2048, maxmem=1024)
    assert [d.name for d in driver.list_domains() if d.name == "kept"] == ["kept"]


def test_live_resize_of_a_stopped_domain_is_refused(driver):
    info = define(driver)
    driver.destroy(info.uuid)
    with pytest.raises(DomainNotRunning) as error:
        driver.set_memory(info.uuid, 512 * 1024, live=True, config=False)
    assert "not running" in str(error.value)


def test_maxmem_goes_to_the_persistent_config(driver):
    info = define(driver)
    driver.set_maxmem(info.uuid, 8192 * 1024)
    after = driver.domain(info.uuid)
    assert after.config_maxmem_kib == 8192 * 1024
    assert after.maxmem_kib == 4096 * 1024  # the running domain keeps its maximum until its next boot


def test_the_test_driver_cannot_migrate_for_real(driver):
    info = define(driver)
    with pytest.raises((NotSupported, InvalidRequest)):
        LibvirtDriver.migrate(driver, info.uuid, driver)


def test_unreachable_host():
    with pytest.raises(HostUnreachable) as error:
        driver_for("test+unix:///default?socket=/nonexistent/libvirt-sock").host_info()
    assert "host unreachable" in str(error.value)


def test_reconnects_after_the_daemon_restarts():
    sim = fleet.simhost(f"re{uuid.uuid4().hex[:6]}")
    fleet.start_daemon(sim)
    try:
        driver = LibvirtDriver(sim.uri)
        assert driver.host_info().hypervisor == "TEST"
        fleet.stop_processes(sim)
        with pytest.raises(HostUnreachable):
            driver.host_info()
        fleet.start_daemon(sim)
        assert driver.host_info().hypervisor == "TEST"
    finally:
        fleet.remove(sim)


def test_the_events_subscriber_outlives_a_lookup_that_fails():
    """`manage.py events` keeps one thread subscribing to the hosts; the database failing once (a restart) ended
    it for good, and the pages then only moved at each poll."""
    import threading
    import time

    from hosts.drivers.events import keep_subscribed

    asked = []

    def uris():
        asked.append(time.monotonic())
        if len(asked) == 1:
            raise RuntimeError("the database went away")
        return []

    stop = threading.Event()
    subscriber = threading.Thread(target=keep_subscribed, args=(uris, lambda _event: None, stop, 0.05), daemon=True)
    subscriber.start()
    deadline = time.monotonic() + 5
    while len(asked) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(asked) >= 3 and subscriber.is_alive()
    stop.set()
    subscriber.join(timeout=5)
    assert not subscriber.is_alive()


def test_a_host_that_does_not_answer_holds_up_no_connection_to_another(sim_hosts):
    """A poll reads its hosts in threads: one host whose TCP connect or ssh login hangs for minutes held the
    process's connection lock meanwhile, and every other host's reading waited behind it."""
    import socket
    import threading
    import time

    from hosts.drivers import pool

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts, and never says a word
    uri = f"qemu+tcp://127.0.0.1:{silent.getsockname()[1]}/system"
    outcome = []
    opening = threading.Thread(target=lambda: outcome.append(_try_connection(pool, uri)), daemon=True)
    opening.start()
    time.sleep(1)
    assert opening.is_alive()  # inside libvirt's open, waiting for an answer
    read = []

    def read_another_host():
        pool.discard(sim_hosts["hv1"].uri)  # a fresh open of its own
        read.append(LibvirtDriver(sim_hosts["hv1"].uri).host_info())

    reading = threading.Thread(target=read_another_host, daemon=True)
    reading.start()
    reading.join(timeout=2)
    silent.close()
    opening.join(timeout=30)
    assert len(read) == 1 and read[0].cpus > 0  # within the 2 s, while the silent host still held up its own open


def _try_connection(pool, uri):
    try:
        return pool.connection(uri)
    except HostUnreachable as exc:
        return exc
