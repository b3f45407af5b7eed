"""Two libvirtd "hosts" on one machine, each with its own host UUID, socket, TCP port and migration ports.

libvirt refuses to migrate a guest to the daemon it came from ("Attempt to migrate guest to the same host"),
so the lab runs two daemons. Both run in session mode as the unprivileged user LAB_USER, each with its own
HOME and XDG directories under STATE_DIR/lab/hosts/NAME. That way:
- neither touches /etc/libvirt, /run/libvirt or /var/lib/libvirt (a root libvirtd with the QEMU driver would
  want /etc/libvirt/qemu.conf, the libvirt-qemu user and the single lock in /run/libvirt/qemu);
- they do not collide with the simulated hosts' daemons, nor with each other;
- QEMU runs unprivileged, and every file it writes is under the host's directory.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

LIBVIRTD = "/usr/sbin/libvirtd"
LAB_USER = "balloonweb-lab"
START_TIMEOUT_S = 60.0  # the first start probes QEMU's capabilities (a few seconds under TCG)
STOP_TIMEOUT_S = 10.0
_HOST_UUID_NAMESPACE = uuid.UUID("5b1c8e02-6f0b-4d7e-9a3c-2f4f0d1a7b10")


@dataclass(frozen=True)
class LabHost:
    """One lab daemon. Its guests' consoles are files in `console_dir`."""

    name: str
    root: Path
    tcp_port: int
    migration_port_min: int  # incoming migrations listen here; the two hosts' ranges do not overlap

    @property
    def host_uuid(self) -> str:
        return str(uuid.uuid5(_HOST_UUID_NAMESPACE, self.name))

    @property
    def socket(self) -> Path:
        return self.root / "sock" / "libvirt-sock"

    @property
    def uri(self) -> str:
        """What BalloonWeb's Host row holds: the unix socket (root may connect; no TCP auth involved)."""
        return f"qemu+unix:///session?socket={self.socket}"

    @property
    def tcp_uri(self) -> str:
        return f"qemu+tcp://127.0.0.1:{self.tcp_port}/session"

    @property
    def console_dir(self) -> Path:
        return self.root / "console"

    @property
    def pid_file(self) -> Path:
        return self.root / "libvirtd.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "libvirtd.log"

    @property
    def config_file(self) -> Path:
        return self.root / "libvirtd.conf"

    def environment(self) -> dict[str, str]:
        """A session daemon finds its qemu.conf, state, cache and runtime directories through these."""
        return {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.root / "home"),
            "XDG_CONFIG_HOME": str(self.root / "config"),
            "XDG_CACHE_HOME": str(self.root / "cache"),
            "XDG_RUNTIME_DIR": str(self.root / "run"),
            "XDG_DATA_HOME": str(self.root / "data"),
            "LANG": "C",
        }

    def daemon_pid(self) -> int | None:
        return _live_pid(self.pid_file)

    @property
    def running(self) -> bool:
        return self.daemon_pid() is not None and self.socket.exists()


def lab_hosts(lab_dir: Path) -> tuple[LabHost, LabHost]:
    hosts_dir = lab_dir / "hosts"
    return (
        LabHost("lab1", hosts_dir / "lab1", tcp_port=16611, migration_port_min=49400),
        LabHost("lab2", hosts_dir / "lab2", tcp_port=16612, migration_port_min=49420),
    )


def libvirtd_config(host: LabHost) -> str:
    return "\n".join(
        [
            f'host_uuid = "{host.host_uuid}"',
            f'unix_sock_dir = "{host.socket.parent}"',
            'unix_sock_rw_perms = "0700"',
            'auth_unix_rw = "none"',
            'auth_unix_ro = "none"',
            "listen_tcp = 1",
            "listen_tls = 0",
            'listen_addr = "127.0.0.1"',
            f'tcp_port = "{host.tcp_port}"',
            'auth_tcp = "none"',
            f'log_outputs = "3:file:{host.log_file}"',
            "",
        ]
    )


def qemu_config(host: LabHost) -> str:
    # From LAB-NOTES: no cgroups, namespaces or security labels without systemd; QEMU's stdout to a file.
    return "\n".join(
        [
            'security_driver = "none"',
            "dynamic_ownership = 0",
            "remember_owner = 0",
            "cgroup_controllers = [ ]",
            "namespaces = [ ]",
            'stdio_handler = "file"',
            f"migration_port_min = {host.migration_port_min}",
            f"migration_port_max = {host.migration_port_min + 9}",
            "",
        ]
    )


def ensure_lab_user() -> bool:
    """Create the unprivileged user the daemons and QEMU run as; True if this call created it."""
    try:
        pwd.getpwnam(LAB_USER)
        return False
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", LAB_USER],
            check=True,
        )
        return True


def remove_lab_user() -> None:
    subprocess.run(["userdel", LAB_USER], check=False, stderr=subprocess.DEVNULL)


def start_daemon(host: LabHost) -> None:
    """Start the host's libvirtd as LAB_USER, unless it already runs; returns when its socket answers."""
    if host.running:
        return
    if not _port_free(host.tcp_port):
        raise RuntimeError(
            f"port {host.tcp_port} of {host.name} is taken: is another lab running (one per machine, whatever its "
            "BALLOONWEB_STATE_DIR)? Stop it with `python manage.py lab down` under that state directory"
        )
    user = pwd.getpwnam(LAB_USER)
    for sub in ("home", "config/libvirt", "cache", "run", "data", "sock", "console"):
        (host.root / sub).mkdir(parents=True, exist_ok=True)
    host.config_file.write_text(libvirtd_config(host))
    (host.root / "config" / "libvirt" / "qemu.conf").write_text(qemu_config(host))
    host.pid_file.unlink(missing_ok=True)
    host.socket.unlink(missing_ok=True)
    _chown_tree(host.root, user.pw_uid, user.pw_gid)
    os.chmod(host.root / "run", 0o700)  # libvirt insists that XDG_RUNTIME_DIR is private
    # -d: libvirtd forks and its parent exits once the daemon is initialised (or has failed).
    result = subprocess.run(
        [LIBVIRTD, "-f", str(host.config_file), "-p", str(host.pid_file), "--listen", "-d"],
        env=host.environment(), user=user.pw_uid, group=user.pw_gid, extra_groups=[], cwd=host.root,
        capture_output=True, text=True, timeout=START_TIMEOUT_S,
    )
    if result.returncode != 0:
        raise RuntimeError(f"libvirtd of {host.name} failed to start: {result.stderr.strip() or _tail(host.log_file)}")
    deadline = time.monotonic() + START_TIMEOUT_S
    while not host.running:
        if time.monotonic() > deadline:
            raise RuntimeError(f"libvirtd of {host.name} did not open {host.socket}: {_tail(host.log_file)}")
        time.sleep(0.1)


def stop_daemon(host: LabHost) -> None:
    """Stop the host's libvirtd, then any QEMU it left behind (a daemon's exit does not stop its guests)."""
    pid = host.daemon_pid()
    if pid is not None:
        _terminate(pid)
    host.pid_file.unlink(missing_ok=True)
    for qemu_pid in leftover_qemu_pids(host):
        _terminate(qemu_pid)


def leftover_qemu_pids(host: LabHost) -> list[int]:
    """QEMU processes of this host, from the pid files its daemon writes, checked against their command line."""
    pids = []
    for pid_file in host.root.glob("**/qemu/run/*.pid"):
        pid = _live_pid(pid_file)
        if pid is None:
            continue
        try:
            command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"qemu-system" in command_line and str(host.root).encode() in command_line:
            pids.append(pid)
    return pids


def remove_host_files(host: LabHost) -> None:
    shutil.rmtree(host.root, ignore_errors=True)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for path in root.rglob("*"):
        os.chown(path, uid, gid, follow_symlinks=False)


def _live_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _terminate(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
