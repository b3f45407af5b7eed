"""Fixtures that start the real parts: a Celery worker on the test database, and simulated hosts on libvirtd.

Tests that involve the worker use `transactional_db`, since the worker reads only what is committed.
"""

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

from balloonweb.access.actors import Actor
from hosts.drivers import DomainConfig, driver_for
from hosts.models import Host
from hosts.simulation import fleet, setup

ROOT = Path(__file__).resolve().parent.parent
WORKER_START_TIMEOUT_S = 60


def pytest_configure(config):
    """One test run at a time per state directory: two would share its simulated hosts, the Redis database that
    each empties and the test database that each creates anew, and fail each other in ways that look like bugs."""
    lock_path = Path(settings.STATE_DIR) / "test-run.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = open(lock_path, "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        pytest.exit(
            f"another test run (pid {holder}) is using {settings.STATE_DIR}, Redis {settings.REDIS_URL} and the test "
            "database: wait for it to end, or give this run its own TEST_STATE_DIR, TEST_REDIS_URL and DATABASE_URL",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )
    lock.truncate(0)
    lock.write(str(os.getpid()))
    lock.flush()
    config.stash[TEST_RUN_LOCK] = lock  # held until this process exits


TEST_RUN_LOCK = pytest.StashKey()


def database_url() -> str:
    """The URL of the test database that pytest-django made, for processes started by tests."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def child_environment(**extra: str) -> dict:
    """The environment of a process a test starts: this test database, Redis and state directory. Never the
    browser tests' async-safety switch, which is for this process only."""
    inherited = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    environment = {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "BALLOONWEB_STATE_DIR": str(settings.STATE_DIR),
        **extra,
    }
    # tests.settings takes these from TEST_REDIS_URL and TEST_STATE_DIR only (tests/settings.py).
    environment["TEST_REDIS_URL"], environment["TEST_STATE_DIR"] = environment["REDIS_URL"], environment["BALLOONWEB_STATE_DIR"]
    return environment


class Worker:
    """A real Celery worker process (prefork) consuming the given queues."""

    def __init__(self, name: str, queues: str = "jobs", concurrency: int = 2):
        self.name, self.queues, self.concurrency = name, queues, concurrency
        self.log = Path(settings.STATE_DIR) / f"worker-{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> "Worker":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.unlink(missing_ok=True)  # an earlier run's "ready." must not pass for this worker's
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "balloonweb", "worker", "-Q", self.queues, "-c", str(self.concurrency),
                "-n", f"{self.name}@%h", "--without-gossip", "--without-mingle", "-l", "info",
                "--logfile", str(self.log),
            ],
            cwd=ROOT, env=child_environment(), start_new_session=True,
        )
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.log.exists() and "ready." in self.log.read_text(errors="replace"):
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited: see {self.log}")
            time.sleep(0.1)
        raise RuntimeError(f"worker {self.name} did not start: see {self.log}")

    def child_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes: no shutdown, no acknowledgements."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The test database, dropped at the end only once nothing else uses it. Workers, daphne and the threads of
    in-process consumers hold connections whose server side ends a moment after they do; DROP DATABASE meeting
    one fails ("is being accessed by other users") and leaves the database behind."""
    yield
    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        others = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        deadline = time.monotonic() + 5
        while True:
            cursor.execute(f"SELECT count(*) {others}")
            if cursor.fetchone()[0] == 0:
                break
            if time.monotonic() > deadline:  # left behind by a process or thread that is gone or done
                cursor.execute(f"SELECT pg_terminate_backend(pid) {others}")
                break
            time.sleep(0.1)


@pytest.fixture(scope="session")
def _clean_queues():
    redis.Redis.from_url(settings.REDIS_URL).flushdb()


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, _clean_queues):
    """One worker for the session, on the default queue."""
    worker = Worker("main").start()
    yield worker
    worker.stop()


@pytest.fixture
def start_worker(django_db_setup, _clean_queues):
    """Start extra workers within a test (stopped at its end): start_worker(name, queues)."""
    started: list[Worker] = []

    def start(name: str, queues: str = "jobs", concurrency: int = 1) -> Worker:
        worker = Worker(name, queues, concurrency).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


SIM_HOSTS = ("hv1", "hv2")


@pytest.fixture(scope="session")
def _simulated_daemons():
    """hv1 and hv2's libvirtd, once per session; each test starts from empty hosts."""
    for name in SIM_HOSTS:
        fleet.start_daemon(fleet.simhost(name))
    yield
    for name in SIM_HOSTS:
        fleet.remove(fleet.simhost(name))


def _wipe(uri: str) -> None:
    driver = driver_for(uri)
    for domain in driver.list_domains():
        driver.undefine(domain.uuid)


@pytest.fixture
def sim_hosts(_simulated_daemons, transactional_db) -> dict[str, Host]:
    """hv1 and hv2 (8 GiB each, 512 MiB reserve), empty, registered and online."""
    hosts = {}
    for name in SIM_HOSTS:
        sim = fleet.simhost(name)
        if not sim.running:
            fleet.start_daemon(sim)
        _wipe(sim.uri)
        hosts[name] = setup.start(name, memory_mib=8192, reserve_mib=512)
    return hosts


def define_domain(host: Host, name: str, memory_mib: int, maxmem_mib: int | None = None, vcpus: int = 1, description: str = ""):
    """A running domain on a host, straight through the driver (as if someone had started it outside)."""
    from domains.inventory import record_domain

    config = DomainConfig(name, memory_mib * 1024, (maxmem_mib or memory_mib) * 1024, vcpus, description=description)
    return record_domain(host, driver_for(host.uri).define_and_start(config))


@pytest.fixture
def foo(sim_hosts):
    """The seed's domain: foo on hv1, memory 1024 MiB, maxmem 4096 MiB, 1 vcpu."""
    return define_domain(sim_hosts["hv1"], "foo", 1024, 4096)


@pytest.fixture
def cli() -> Actor:
    return Actor.command_line()


def wait_for_job(job, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.is_finished:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job.pk} still {job.state} after {timeout} s: {job.log} {job.error}")


def virsh(uri: str, *args: str) -> str:
    return subprocess.run(["virsh", "-c", uri, *args], capture_output=True, text=True, check=True, timeout=30).stdout


def virsh_dominfo(uri: str, name: str) -> dict[str, str]:
    lines = virsh(uri, "dominfo", name).splitlines()
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines) if v}


_last_cycle_second = 0


def autoscaler_cycle(timeout: float = 60.0):
    """What the poller and the autoscaler do every interval, done in order: poll every host, run the
    autoscaler, wait for its jobs (and for the steps that waited for shrinks) to end. Needs a Celery worker."""
    from domains import poller
    from domains.autoscaler import run
    from domains.autoscaler.models import Decision
    from domains.models import Job

    global _last_cycle_second
    # A guest's statistics carry a whole-second timestamp (QEMU's balloon.last-update; the simulated hosts' too),
    # and a poll that finds the previous poll's one takes them as stale. Polls 5 s apart never do; cycles that
    # end within a second of each other would, so a cycle starts in a new second.
    while int(time.time()) == _last_cycle_second:
        time.sleep(0.05)
    _last_cycle_second = int(time.time())
    poller.poll_hosts(list(Host.objects.all()))
    report = run.run_autoscaler()
    assert report.ran, report
    deadline = time.monotonic() + timeout
    while Job.objects.filter(state__in=Job.UNFINISHED).exists() or Decision.objects.filter(state=Decision.State.WAITING).exists():
        assert time.monotonic() < deadline, list(Job.objects.filter(state__in=Job.UNFINISHED).values("kind", "state", "log"))
        time.sleep(0.1)
    time.sleep(run.MIN_RUN_INTERVAL_S)  # the next cycle may run
    return report
