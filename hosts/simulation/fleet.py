"""The simulated fleet: one private libvirtd per simulated host, serving libvirt's test driver.

Each host lives in STATE_DIR/simhosts/NAME: the daemon's config, its socket and pid file, and the pid of a
keeper process that holds the connection which keeps the daemon's test driver state alive.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

LIBVIRTD = "/usr/sbin/libvirtd"
START_TIMEOUT_S = 15.0
DEFAULT_TEST_DOMAIN = "test"


@dataclass(frozen=True)
class SimHost:
    name: str
    directory: Path

    @property
    def socket(self) -> Path:
        return self.directory / "libvirt-sock"

    @property
    def uri(self) -> str:
        return f"test+unix:///default?socket={self.socket}"

    def describe(self, *, memory_mib: int, cpus: int, migration_mib_s: int | None = None) -> None:
        """The simulated machine's size, and the speed of its migration link (None: moves are instant); the
        simulated driver reads them next to the socket (see node_file_for)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        node = {"memory_kib": memory_mib * 1024, "cpus": cpus}
        if migration_mib_s:
            node["migration_kib_per_s"] = migration_mib_s * 1024
        node_file_for(self.socket).write_text(json.dumps(node))

    @property
    def daemon_pid_file(self) -> Path:
        return self.directory / "libvirtd.pid"

    @property
    def keeper_pid_file(self) -> Path:
        return self.directory / "keeper.pid"

    def pid(self, pid_file: Path) -> int | None:
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return pid

    @property
    def running(self) -> bool:
        return self.pid(self.daemon_pid_file) is not None and self.socket.exists()


def node_file_for(socket: Path) -> Path:
    return socket.parent / "node.json"


def root() -> Path:
    return Path(settings.STATE_DIR) / "simhosts"


def simhost(name: str) -> SimHost:
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"{name!r} is not a host name")
    return SimHost(name, root() / name)


def all_simhosts() -> list[SimHost]:
    if not root().exists():
        return []
    return [simhost(p.name) for p in sorted(root().iterdir()) if p.is_dir()]


def _config(host: SimHost) -> str:
    return "\n".join(
        [
            f'unix_sock_dir = "{host.directory}"',
            'unix_sock_rw_perms = "0770"',
            'auth_unix_rw = "none"',
            'auth_unix_ro = "none"',
            "listen_tcp = 0",
            "listen_tls = 0",
            "max_clients = 5000",
            "max_workers = 20",
            "max_client_requests = 50",
            'log_outputs = "3:stderr"',
            "",
        ]
    )


def start_daemon(host: SimHost) -> None:
    """Start the host's libvirtd and its keeper, unless they already run."""
    if host.running and host.pid(host.keeper_pid_file):
        return
    stop_processes(host)
    host.directory.mkdir(parents=True, exist_ok=True)
    (host.directory / "drivers").mkdir(exist_ok=True)
    conf = host.directory / "libvirtd.conf"
    conf.write_text(_config(host))
    # An empty driver directory keeps the QEMU driver from loading: a simulated host needs only the test driver.
    environment = {**os.environ, "LIBVIRT_DRIVER_DIR": str(host.directory / "drivers")}
    with open(host.directory / "libvirtd.log", "ab") as log:
        subprocess.run(
            [LIBVIRTD, "-f", str(conf), "-p", str(host.daemon_pid_file), "-d"],
            env=environment, stdout=log, stderr=log, check=True, timeout=START_TIMEOUT_S,
        )
    _wait_for(lambda: host.socket.exists(), f"libvirtd of {host.name} did not open {host.socket}")
    keeper = subprocess.Popen(
        [sys.executable, "-m", "hosts.drivers.keeper", host.uri],
        cwd=settings.BASE_DIR, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    if keeper.stdout.readline().strip() != b"ready":
        raise RuntimeError(f"the keeper of {host.name} could not connect to {host.uri}")
    host.keeper_pid_file.write_text(str(keeper.pid))
    _prepare_domains(host)


def _prepare_domains(host: SimHost) -> None:
    """Remove libvirt's sample domain (every test:///default daemon has it, with one fixed UUID, which would
    look like one domain on many hosts) and boot the host's saved domains."""
    from hosts.drivers import driver_for

    driver = driver_for(host.uri)
    for domain in driver.list_domains():
        if domain.name == DEFAULT_TEST_DOMAIN:
            driver.undefine(domain.uuid)
    driver.boot_saved_domains()


def stop_processes(host: SimHost) -> None:
    for pid_file in (host.keeper_pid_file, host.daemon_pid_file):
        pid = host.pid(pid_file)
        if pid is not None:
            _terminate(pid)
        pid_file.unlink(missing_ok=True)


def remove(host: SimHost) -> None:
    stop_processes(host)
    shutil.rmtree(host.directory, ignore_errors=True)


def _terminate(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:
            os.waitpid(pid, os.WNOHANG)  # reap our own child (the keeper)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _wait_for(predicate, message: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(message)
