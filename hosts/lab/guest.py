"""The lab's guest: a Debian kernel and a busybox initramfs that loads virtio-balloon and runs a memory workload.

Built once and cached (kernel ~8 MB, initramfs ~1.1 MB). The kernel comes from the versioned Debian package
that `linux-image-amd64` depends on, fetched with `apt-get download` and never installed (installing it pulls
systemd). Only the kernel image and the six modules are taken out of the package, not its 400 MB tree.

The guest has no disk and no network. Its /init loads the balloon driver, then every second:
- holds (in a tmpfs, which cannot be reclaimed without swap) as much memory as its demand schedule says, but
  gives memory back rather than run out: it keeps at least RESERVE_MIB available, so a balloon that squeezes
  it makes it shed load instead of OOM-killing itself (the shortfall shows as `short=` in its report), and a
  demand above what it has leaves only a few MiB free, which the autoscaler reads as a guest out of memory;
- prints one report line to the serial console, which is a file on the host:
  `LAB up=12.34 total=468548 free=... avail=... demand=64 held=64 short=0` (memory in KiB, demand/held MiB).

The schedule is the kernel parameter `lab.demand=SECONDS:MIB,SECONDS:MIB,...`, repeated forever from boot.
"""

import gzip
import hashlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

KERNEL_META_PACKAGE = "linux-image-amd64"
BUSYBOX = Path("/bin/busybox")  # from busybox-static: a static binary runs inside the initramfs as it is
# CONFIG_VIRTIO_BALLOON=m in Debian's kernel; insmod does not resolve dependencies, so this order matters.
BALLOON_MODULES = (
    "virtio_ring",
    "virtio",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "virtio_balloon",
)
CHUNK_MIB = 4  # the workload grows and shrinks in files of this size
# What the workload always leaves available, so that the guest never runs out. Small, as an application's
# allocator would leave: a guest short of memory must look short in its balloon statistics (a few MiB free),
# else the autoscaler cannot tell it from a guest that is merely using what it has.
RESERVE_MIB = 6


@dataclass(frozen=True)
class GuestImage:
    kernel: Path
    initramfs: Path
    kernel_version: str


INIT_SCRIPT = f"""#!/bin/busybox sh
# BalloonWeb lab guest. Output goes to ttyS0, which the host writes to a file.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for module in {" ".join(BALLOON_MODULES)}; do
    insmod /lib/modules/$module.ko || echo "LAB error insmod $module"
done
mount -t tmpfs -o size=100% hog /hog

SCHEDULE=$(tr ' ' '\\n' < /proc/cmdline | sed -n 's/^lab\\.demand=//p')
[ -n "$SCHEDULE" ] || SCHEDULE=3600:32
PAIRS=$(echo "$SCHEDULE" | tr ',' ' ')
CYCLE=0
for pair in $PAIRS; do CYCLE=$((CYCLE + ${{pair%%:*}})); done

demand_at() {{  # MiB wanted $1 seconds after boot
    local t=$(($1 % CYCLE)) pair
    for pair in $PAIRS; do
        if [ "$t" -lt "${{pair%%:*}}" ]; then echo "${{pair#*:}}"; return; fi
        t=$((t - ${{pair%%:*}}))
    done
}}

meminfo() {{ sed -n "s/^$1: *\\([0-9]*\\) kB/\\1/p" /proc/meminfo; }}

echo "LAB ready kernel=$(uname -r) balloon=$([ -d /sys/bus/virtio/drivers/virtio_balloon ] && echo 1 || echo 0)"
held=0
while true; do
    up=$(cut -d' ' -f1 /proc/uptime)
    demand=$(demand_at "${{up%.*}}")
    want=$((demand / {CHUNK_MIB} * {CHUNK_MIB}))
    avail=$(($(meminfo MemAvailable) / 1024))
    while [ "$held" -lt "$want" ] && [ "$avail" -gt $(({RESERVE_MIB} + {CHUNK_MIB})) ]; do
        dd if=/dev/zero of=/hog/chunk$((held / {CHUNK_MIB})) bs=1M count={CHUNK_MIB} 2>/dev/null
        held=$((held + {CHUNK_MIB})); avail=$((avail - {CHUNK_MIB}))
    done
    while [ "$held" -gt 0 ] && {{ [ "$held" -gt "$want" ] || [ "$avail" -lt {RESERVE_MIB} ]; }}; do
        held=$((held - {CHUNK_MIB})); avail=$((avail + {CHUNK_MIB}))
        rm -f /hog/chunk$((held / {CHUNK_MIB}))
    done
    echo "LAB up=$up total=$(meminfo MemTotal) free=$(meminfo MemFree) avail=$(meminfo MemAvailable)" \\
        "demand=$demand held=$held short=$((want - held))"
    sleep 1
done
"""


def as_root(command: list[str]) -> list[str]:
    """The command as root: as it is when this process is root (containers often have no sudo), else via sudo."""
    return command if os.geteuid() == 0 else ["sudo", *command]


def build_guest(cache_dir: Path) -> GuestImage:
    """The cached guest, built on first use: `apt-get download` the kernel package, take what the guest needs.

    The kernel and modules are kept; the initramfs is built again whenever INIT_SCRIPT changes, so that a cache
    left by an older checkout never runs an older workload."""
    guest_dir = cache_dir.resolve() / "guest"
    manifest = guest_dir / "guest.json"
    module_dir = guest_dir / "modules"
    init_sha = hashlib.sha256(INIT_SCRIPT.encode()).hexdigest()[:16]
    data = json.loads(manifest.read_text()) if manifest.exists() else {}
    kernel = Path(data["kernel"]) if "kernel" in data else None
    modules = {name: module_dir / f"{name}.ko" for name in BALLOON_MODULES}
    if kernel is None or not kernel.exists() or not all(path.exists() for path in modules.values()):
        kernel, version = _download_kernel_and_modules(cache_dir, guest_dir, module_dir)
    else:
        version = data["kernel_version"]
    image = GuestImage(kernel, guest_dir / f"initramfs-{version}-{init_sha}.cpio.gz", version)
    if not image.initramfs.exists():
        for stale in guest_dir.glob("initramfs-*.cpio.gz"):
            stale.unlink()
        image.initramfs.write_bytes(build_initramfs(modules))
    # The daemons run QEMU as an unprivileged user: it must be able to read both files.
    image.kernel.chmod(0o644)
    image.initramfs.chmod(0o644)
    manifest.write_text(json.dumps({"kernel": str(image.kernel), "initramfs": str(image.initramfs), "kernel_version": version}))
    return image


def _download_kernel_and_modules(cache_dir: Path, guest_dir: Path, module_dir: Path) -> tuple[Path, str]:
    module_dir.mkdir(parents=True, exist_ok=True)
    package = kernel_package_name()
    version = package.removeprefix("linux-image-")
    with tempfile.TemporaryDirectory(prefix="lab-kernel-", dir=cache_dir) as scratch:
        scratch_dir = Path(scratch)
        log.info("downloading %s with apt-get download", package)
        download = ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", package]
        if subprocess.run(download, cwd=scratch_dir, stdout=subprocess.DEVNULL).returncode != 0:
            # Package lists older than the mirror name a version it no longer has: read them again, once.
            log.info("apt-get download failed: updating the package lists and trying again")
            subprocess.run(as_root(["apt-get", "update", "-qq"]), check=True)
            subprocess.run(download, cwd=scratch_dir, check=True, stdout=subprocess.DEVNULL)
        deb = next(scratch_dir.glob(f"{package}_*.deb"))
        kernel, modules = _extract_kernel_and_modules(deb, version, scratch_dir / "tree")
        kept = guest_dir / f"vmlinuz-{version}"
        shutil.copyfile(kernel, kept)
        for name, path in modules.items():
            shutil.copyfile(path, module_dir / f"{name}.ko")
    return kept, version


def kernel_package_name() -> str:
    """The versioned kernel package behind the meta package, e.g. linux-image-6.1.0-56-amd64."""
    out = subprocess.run(["apt-cache", "depends", KERNEL_META_PACKAGE], check=True, capture_output=True, text=True).stdout
    match = re.search(r"Depends: (linux-image-\d\S*-amd64)\b", out)
    if not match:
        raise RuntimeError(f"apt-cache depends {KERNEL_META_PACKAGE} names no versioned kernel package:\n{out}")
    return match.group(1)


def _extract_kernel_and_modules(deb: Path, version: str, into: Path) -> tuple[Path, dict[str, Path]]:
    """Stream the package's data archive and keep only vmlinuz and the balloon modules."""
    wanted_modules = {f"{name}.ko": name for name in BALLOON_MODULES}
    kernel_member = f"./boot/vmlinuz-{version}"
    into.mkdir(parents=True)
    kernel: Path | None = None
    modules: dict[str, Path] = {}
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as dpkg:
        with tarfile.open(fileobj=dpkg.stdout, mode="r|") as archive:
            for member in archive:
                base = member.name.rsplit("/", 1)[-1]
                if member.name == kernel_member:
                    target = kernel = into / "vmlinuz"
                elif member.name.startswith(f"./lib/modules/{version}/") and base in wanted_modules:
                    target = modules[wanted_modules[base]] = into / base
                else:
                    continue
                with open(target, "wb") as out:
                    shutil.copyfileobj(archive.extractfile(member), out)
    missing = [name for name in BALLOON_MODULES if name not in modules]
    if kernel is None or missing:
        raise RuntimeError(f"{deb.name} lacks {'vmlinuz' if kernel is None else ''} {' '.join(missing)}".strip())
    return kernel, modules


def build_initramfs(modules: dict[str, Path]) -> bytes:
    """A gzipped newc cpio archive: busybox, /init, the modules and a /dev/console for init's first output."""
    archive = _Cpio()
    for directory in ("bin", "dev", "proc", "sys", "hog", "lib", "lib/modules"):
        archive.add(directory, 0o040755)
    # The kernel opens /dev/console before /init runs and mounts devtmpfs: without the node, init has no output.
    archive.add("dev/console", 0o020600, rdev=(5, 1))
    archive.add("bin/busybox", 0o100755, BUSYBOX.read_bytes())
    archive.add("init", 0o100755, INIT_SCRIPT.encode())
    for name in BALLOON_MODULES:
        archive.add(f"lib/modules/{name}.ko", 0o100644, modules[name].read_bytes())
    return gzip.compress(archive.finish(), compresslevel=9, mtime=0)


class _Cpio:
    """The "newc" format the kernel unpacks; written here so that building needs no cpio tool."""

    def __init__(self):
        self._out = io.BytesIO()
        self._inode = 1

    def add(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        encoded = name.encode() + b"\0"
        fields = (self._inode, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
        self._inode += 1
        self._out.write(b"070701" + b"".join(b"%08X" % value for value in fields))
        self._out.write(encoded)
        self._pad()
        self._out.write(data)
        self._pad()

    def _pad(self) -> None:
        self._out.write(b"\0" * (-self._out.tell() % 4))

    def finish(self) -> bytes:
        self.add("TRAILER!!!", 0)
        return self._out.getvalue()


MAXMEM_MIB = 512


def guest_xml(name: str, uuid: str, image: GuestImage, console_path: Path, demand: str, stats_period_s: int) -> str:
    """A TCG guest (the KVM here is paravirtual and crawls) with no disk and no NIC, 512 MiB maxmem, a virtio
    balloon whose statistics the guest refreshes every `stats_period_s`, and its serial console in a file."""
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <description>BalloonWeb lab guest; demand schedule {demand}</description>
  <memory unit='MiB'>{MAXMEM_MIB}</memory>
  <currentMemory unit='MiB'>{MAXMEM_MIB}</currentMemory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{image.kernel}</kernel>
    <initrd>{image.initramfs}</initrd>
    <cmdline>console=ttyS0 quiet lab.demand={demand}</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' model='none'/>
    <serial type='file'><source path='{console_path}'/><target port='0'/></serial>
    <console type='file'><source path='{console_path}'/><target type='serial' port='0'/></console>
    <memballoon model='virtio'><stats period='{stats_period_s}'/></memballoon>
  </devices>
</domain>
"""
