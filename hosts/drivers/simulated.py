"""The libvirt test driver as a simulated host: real libvirt, guest figures from the demand model, and a
migration done as a move (define on the destination, undefine on the source), since the test driver has none.
"""

import json
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from hosts.simulation.demand import Demand, demand_for, guest_figures
from hosts.simulation.fleet import node_file_for
from hosts.units import format_mib

from .base import DomainInfo, DomainStats, HostInfo, MigrationProgress, MigrationResult, ProgressCallback, StopRequested
from .errors import DriverError, MigrationStopped, NotSupported
from .libvirt_driver import ACTIVE_STATES, MIGRATION_POLL_S, LibvirtDriver


class SimulatedDriver(LibvirtDriver):
    def __init__(self, uri: str):
        super().__init__(uri)
        self._demands: dict[str, Demand] = {}
        self._node = _node_file(uri)

    def _demand(self, uuid: str, maxmem_kib: int) -> Demand:
        demand = self._demands.get(uuid)
        if demand is None:
            description = _description(self.domain_xml(uuid))
            demand = self._demands[uuid] = demand_for(uuid, maxmem_kib, description)
        return demand

    # -- persistence: a real host keeps its domains' configs on disk and boots them again after a crash; the
    # test driver keeps them in memory only, so a simulated host keeps them in its directory.

    def _saved(self, uuid: str) -> Path | None:
        return self._node.parent / "domains" / f"{uuid}.xml" if self._node else None

    def _save(self, uuid: str) -> None:
        path = self._saved(uuid)
        if path is not None:
            path.parent.mkdir(exist_ok=True)
            path.write_text(self.domain_xml(uuid))

    def define_xml_and_start(self, xml: str, **options) -> DomainInfo:
        info = super().define_xml_and_start(xml, **options)
        self._save(info.uuid)
        return info

    def set_maxmem(self, uuid: str, kib: int) -> None:
        super().set_maxmem(uuid, kib)
        self._save(uuid)

    def undefine(self, uuid: str) -> None:
        super().undefine(uuid)
        path = self._saved(uuid)
        if path is not None:
            path.unlink(missing_ok=True)

    def boot_saved_domains(self) -> int:
        """Define and start the saved domains that the daemon does not have (after a restart): at their
        configured memory, as a real host's guests come back after it crashed."""
        saved = sorted((self._node.parent / "domains").glob("*.xml")) if self._node else []
        present = {d.uuid for d in self.list_domains()}
        booted = 0
        for path in saved:
            if path.stem not in present:
                self.define_xml_and_start(path.read_text())
                booted += 1
        return booted

    def host_info(self) -> HostInfo:
        """libvirt's test node is always 3 GiB and 16 CPUs; a simulated host says its own size in node.json."""
        info = super().host_info()
        size = _node_size(self._node)
        if not size:
            return info
        return replace(info, total_kib=size["memory_kib"], cpus=size["cpus"])

    def _info(self, dom) -> DomainInfo:
        info = super()._info(dom)
        return replace(info, cpu_time_ns=_cpu_time_ns(info.cpu_time_ns, _node_started_ns(self._node)))

    def bulk_stats(self) -> list[DomainStats]:
        now = time.time()
        started = _node_started_ns(self._node)
        result = []
        for stats in super().bulk_stats():
            if stats.state in ACTIVE_STATES and stats.actual_kib is None:
                figures = guest_figures(self._demand(stats.uuid, stats.maxmem_kib), stats.memory_kib, now)
                stats = replace(
                    stats,
                    actual_kib=figures.actual_kib,
                    available_kib=figures.available_kib,
                    unused_kib=figures.unused_kib,
                    usable_kib=figures.usable_kib,
                    rss_kib=figures.rss_kib,
                    last_update=int(now),
                    cpu_time_ns=_cpu_time_ns(stats.cpu_time_ns, started),
                )
            result.append(stats)
        return result

    def migrate(self, uuid: str, destination: LibvirtDriver, progress: ProgressCallback | None = None,
                stop_requested: StopRequested | None = None, **_) -> MigrationResult:
        if not isinstance(destination, SimulatedDriver):
            raise NotSupported("a simulated domain can only move to another simulated host")
        report = progress or (lambda _p: None)
        # As a live migration: it arrives running as it runs here (its live maxmem), and keeps its persistent
        # config (a maxmem lowered for the next boot) for its next boot there. Booted from the persistent config,
        # a domain holding more than that maxmem could not be given its memory, and stayed on both hosts.
        live_xml, persistent_xml = self.domain_xml(uuid, migratable=True), self.domain_xml(uuid)
        current = self.domain(uuid)
        if current is not None:
            self._send_memory(current.memory_kib, report, stop_requested)
        was_there = destination.domain(uuid) is not None
        moved = destination.define_xml_and_start(live_xml, start_memory_kib=current.memory_kib if current else None,
                                                 remove_if_not_started=not was_there, persistent_xml=persistent_xml)
        report(MigrationProgress(95))
        try:
            self.undefine(uuid)
        except DriverError:
            destination.undefine(moved.uuid)  # never leave the domain on both hosts
            raise
        report(MigrationProgress(100))
        return MigrationResult(
            simulated=True,
            detail=f"simulated move: the test driver cannot migrate, so {moved.name} was defined and started on "
            f"{destination.uri} with the same UUID, config and {format_mib(moved.memory_kib)}, then undefined here",
        )

    def _send_memory(self, kib: int, report: ProgressCallback, stop_requested: StopRequested | None) -> None:
        """The test driver copies nothing. A simulated host given a link speed (node.json) takes the time such a
        link would, reporting progress, so that a move can be watched and stopped on its way; without one it
        only checks once for a stop."""
        rate = (_node_size(self._node) or {}).get("migration_kib_per_s")
        seconds = kib / rate if rate else 0.0
        started, percent = time.monotonic(), 0
        while True:
            if stop_requested and stop_requested():
                raise MigrationStopped(f"stopped on request at {percent} %")
            elapsed = time.monotonic() - started
            if elapsed >= seconds:
                return
            sent = int(kib * elapsed / seconds)
            percent = 90 * sent // kib
            report(MigrationProgress(percent, processed_kib=sent, remaining_kib=kib - sent))
            time.sleep(min(MIGRATION_POLL_S, seconds - elapsed))


def _node_file(uri: str) -> Path | None:
    """hosts.simulation.fleet describes a simulated host in a file beside its socket."""
    socket = parse_qs(urlsplit(uri).query).get("socket", [None])[0]
    return node_file_for(Path(socket)) if socket else None


def _node_size(node: Path | None) -> dict | None:
    try:
        return json.loads(node.read_text())
    except (AttributeError, OSError, ValueError):
        return None


def _node_started_ns(node: Path | None) -> int | None:
    try:
        return node.stat().st_mtime_ns
    except (AttributeError, OSError):
        return None


def _cpu_time_ns(reported_ns: int, started_ns: int | None) -> int:
    """The test driver reports the wall clock as cpu time; count it from the host's start instead, as if each
    guest kept one vCPU busy since then."""
    return max(0, reported_ns - started_ns) if started_ns else reported_ns


def _description(xml: str) -> str:
    start, end = xml.find("<description>"), xml.find("</description>")
    if start < 0 or end < 0:
        return ""
    from xml.sax.saxutils import unescape

    return unescape(xml[start + len("<description>") : end])
