"""`lab up`, `lab down` and `lab status`: the lab as BalloonWeb hosts `lab1` and `lab2`, one guest on each.

Everything the lab makes lives in STATE_DIR/lab: the cached guest (guest/), the daemons' directories
(hosts/lab1, hosts/lab2) and a record of what `up` created outside it (made.json: the user, the packages).
"""

import json
import logging
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from hosts.drivers import DriverError, driver_for, pool
from hosts.models import Host

from . import console, daemons
from .guest import GuestImage, as_root, build_guest, guest_xml
from .migration import lab_dir

log = logging.getLogger(__name__)

# What the lab needs from Debian. qemu-utils (qemu-img) is not needed: the guests have no disk.
APT_PACKAGES = (
    "qemu-system-x86",
    "busybox-static",
    "libvirt-daemon",
    "libvirt-daemon-driver-qemu",
    "libvirt-clients",
)
# The hosts' size as BalloonWeb sees it (an operator's capacity, not the machine's): both guests at their
# 512 MiB maxmem fit on one host, so either can always be migrated, but not much more.
HOST_CAPACITY_MIB = 1024
HOST_RESERVE_MIB = 0
BOOT_TIMEOUT_S = 90.0  # the guests print their first report 5-10 s after start under TCG; slower when busy
_GUEST_UUID_NAMESPACE = uuid.UUID("0c1f5a3e-7d2b-4e8f-b6a1-93d4c2e5f708")


@dataclass(frozen=True)
class LabGuest:
    name: str
    host_name: str  # where `up` starts it; a migration may have moved it since
    demand: str  # the workload's schedule: SECONDS:MIB,... repeated from boot

    @property
    def uuid(self) -> str:
        return str(uuid.uuid5(_GUEST_UUID_NAMESPACE, self.name))


# labvm1 spikes (30 s of 224 MiB every two minutes); labvm2 swings slowly between 96 and 192 MiB.
DEFAULT_GUESTS = (
    LabGuest("labvm1", "lab1", "90:64,30:224"),
    LabGuest("labvm2", "lab2", "120:96,120:192"),
)


def guests(demand: str | None = None) -> tuple[LabGuest, ...]:
    """The lab's guests; `demand` replaces every guest's schedule (tests use a quiet one)."""
    if demand is None:
        return DEFAULT_GUESTS
    return tuple(LabGuest(g.name, g.host_name, demand) for g in DEFAULT_GUESTS)


def hosts() -> tuple[daemons.LabHost, daemons.LabHost]:
    return daemons.lab_hosts(lab_dir())


def stats_period_s() -> int:
    """The guests refresh their balloon statistics as often as the poller reads them (libvirt takes seconds)."""
    return max(1, round(settings.POLL_INTERVAL))


# -- up -------------------------------------------------------------------------------------------------------


def up(*, demand: str | None = None, install: bool = True, say=log.info) -> list[Host]:
    """`lab up`: start the lab (see `start`), register lab1 and lab2, and let the poller see their guests."""
    by_name = start(demand=demand, install=install, say=say)
    registered = register_hosts(by_name.values())
    refresh_inventory(registered)
    return registered


def start(*, demand: str | None = None, install: bool = True, say=log.info) -> dict[str, daemons.LabHost]:
    """Install what is missing, build the guest once, start both daemons and their guests. No database.

    Idempotent: what already runs is left alone. Returns when every guest has printed its first report.
    """
    root = lab_dir()
    root.mkdir(parents=True, exist_ok=True)
    made = _made(root)
    if install:
        made["packages"] = sorted(set(made.get("packages", [])) | set(install_packages(say)))
    if daemons.ensure_lab_user():
        made["user"] = daemons.LAB_USER
    _save_made(root, made)
    say("building the guest (cached after the first time)")
    image = build_guest(root)
    by_name = {host.name: host for host in hosts()}
    for host in by_name.values():
        say(f"starting libvirtd of {host.name} ({host.uri})")
        daemons.start_daemon(host)
    for guest in guests(demand):
        start_guest(guest, image, say)
    for guest in guests(demand):
        say(f"waiting for {guest.name} to boot")
        console.wait_for_report(guest_console(guest.uuid), lambda _r: True, BOOT_TIMEOUT_S)
    return by_name


def install_packages(say=log.info) -> list[str]:
    """apt-get install what is missing (the 6 MB daemon and QEMU packages); returns what it installed."""
    missing = [p for p in APT_PACKAGES if not _installed(p)]
    if missing:
        say(f"apt-get install {' '.join(missing)}")
        subprocess.run(as_root(["apt-get", "update", "-qq"]), check=True)
        subprocess.run(as_root(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]), check=True)
    return missing


def _installed(package: str) -> bool:
    result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return result.returncode == 0 and "install ok installed" in result.stdout


def start_guest(guest: LabGuest, image: GuestImage | None = None, say=log.info) -> None:
    """Start a guest on its home host unless it runs somewhere already. A guest other than the default two
    (tests start one with a schedule of their own) is removed by `stop` like the others."""
    image = image or build_guest(lab_dir())
    by_name = {host.name: host for host in hosts()}
    for host in by_name.values():  # a migrated guest is wherever it went: leave it there
        info = driver_for(host.uri).domain(guest.uuid)
        if info is not None:
            if info.state == "shutoff":
                driver_for(host.uri).start(guest.uuid)
            return
    host = by_name[guest.host_name]
    say(f"starting {guest.name} on {host.name} (TCG, {guest.demand})")
    xml = guest_xml(guest.name, guest.uuid, image, host.console_dir / f"{guest.name}.log", guest.demand, stats_period_s())
    driver_for(host.uri).define_xml_and_start(xml)


def register_hosts(lab_hosts) -> list[Host]:
    registered = []
    with transaction.atomic():
        for lab_host in lab_hosts:
            host, _ = Host.objects.update_or_create(
                name=lab_host.name,
                defaults={"uri": lab_host.uri, "capacity_kib": HOST_CAPACITY_MIB * 1024, "reserved_kib": HOST_RESERVE_MIB * 1024},
            )
            registered.append(host)
    return registered


def refresh_inventory(registered: list[Host]) -> None:
    """Let the poller see the hosts and their domains at once, as `simhost start` does, rather than next cycle."""
    try:
        from domains.poller import poll_hosts
    except ImportError:
        return
    poll_hosts(registered)


# -- down -----------------------------------------------------------------------------------------------------


def down(*, purge: bool = False, say=log.info) -> None:
    """`lab down`: stop the lab (see `stop`) and unregister lab1 and lab2 (their domains and jobs go with them)."""
    stop(purge=purge, say=say)
    Host.objects.filter(name__in=[h.name for h in hosts()]).delete()


def stop(*, purge: bool = False, say=log.info) -> None:
    """Stop the guests and daemons, remove their files and the user `start` created. No database.

    The cached guest stays unless `purge`; installed packages stay (other things may use them)."""
    root = lab_dir()
    for host in hosts():
        if host.running:
            _remove_guests(host, say)
        pool.discard(host.uri)
        say(f"stopping libvirtd of {host.name}")
        daemons.stop_daemon(host)
        daemons.remove_host_files(host)
    made = _made(root)
    if made.get("user"):
        daemons.remove_lab_user()
    (root / "made.json").unlink(missing_ok=True)
    if made.get("packages"):
        say(f"left installed: {' '.join(made['packages'])} (apt-get remove them if you want them gone)")
    shutil.rmtree(root if purge else root / "hosts", ignore_errors=True)


def _remove_guests(host: daemons.LabHost, say) -> None:
    driver = driver_for(host.uri)
    try:
        for info in driver.list_domains():
            say(f"destroying {info.name} on {host.name}")
            driver.undefine(info.uuid)
    except DriverError as exc:
        say(f"{host.name}: {exc} (its QEMU processes are stopped by pid instead)")


# -- status ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GuestStatus:
    name: str
    host: str
    state: str
    balloon_kib: int  # what libvirt holds as the balloon target
    report: console.GuestReport | None  # what the guest says
    report_age_s: float | None


def status() -> list[GuestStatus]:
    result = []
    for host in hosts():
        if not host.running:
            continue
        for info in driver_for(host.uri).list_domains():
            path = guest_console(info.uuid, host)
            report = console.last_report(path) if path else None
            age = time.time() - path.stat().st_mtime if path and path.exists() else None
            result.append(GuestStatus(info.name, host.name, info.state, info.memory_kib, report, age))
    return result


def guest_console(uuid_: str, host: daemons.LabHost | None = None) -> Path | None:
    """The console file a guest writes now: from its live definition on whichever lab host runs it."""
    for candidate in [host] if host else hosts():
        try:
            xml = driver_for(candidate.uri).domain_xml(uuid_, migratable=True)
        except DriverError:
            continue
        return console.console_path(xml)
    return None


def where(uuid_: str) -> daemons.LabHost | None:
    """The lab host whose daemon has the guest defined, by asking both."""
    for host in hosts():
        try:
            if driver_for(host.uri).domain(uuid_) is not None:
                return host
        except DriverError:
            continue
    return None


def _made(root: Path) -> dict:
    try:
        return json.loads((root / "made.json").read_text())
    except (OSError, ValueError):
        return {}


def _save_made(root: Path, made: dict) -> None:
    (root / "made.json").write_text(json.dumps(made, indent=1))
