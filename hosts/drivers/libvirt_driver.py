"""The one hypervisor driver: libvirt, for any URI it accepts (test:, qemu:, xen:, with +unix, +tcp, +ssh)."""

import logging
import re
import threading
import time
from xml.sax.saxutils import escape

import libvirt

from hosts.units import format_mib

from . import pool
from .base import (
    DomainConfig,
    DomainInfo,
    DomainStats,
    HostInfo,
    MigrationProgress,
    MigrationResult,
    ProgressCallback,
    StopRequested,
)
from .errors import (
    AboveMaxMemory,
    DomainNotFound,
    DomainNotRunning,
    DriverError,
    HostUnreachable,
    InvalidRequest,
    MigrationStopped,
    NotSupported,
)

log = logging.getLogger(__name__)

STATE_NAMES = {
    libvirt.VIR_DOMAIN_NOSTATE: "running",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "blocked",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_SHUTOFF: "shutoff",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "pmsuspended",
}
ACTIVE_STATES = {"running", "blocked", "paused", "shutdown"}

BULK_STATS_GROUPS = (
    libvirt.VIR_DOMAIN_STATS_STATE
    | libvirt.VIR_DOMAIN_STATS_BALLOON
    | libvirt.VIR_DOMAIN_STATS_VCPU
    | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
)
# Errors that mean the connection itself is gone, rather than the request being wrong.
UNREACHABLE_CODES = {
    libvirt.VIR_ERR_SYSTEM_ERROR,
    libvirt.VIR_ERR_RPC,
    libvirt.VIR_ERR_NO_CONNECT,
    libvirt.VIR_ERR_INVALID_CONN,
    libvirt.VIR_ERR_AUTH_FAILED,
}
MIGRATION_POLL_S = 0.5
BALLOON_SETTLE_TIMEOUT_S = 10.0
BALLOON_SETTLE_POLL_S = 0.2
_XML_MEMORY = re.compile(r"<(memory|currentMemory)(?: unit='(\w+)')?>(\d+)</\1>")
_UNIT_TO_KIB = {"b": 1 / 1024, "bytes": 1 / 1024, "KiB": 1, "k": 1, "MiB": 1024, "M": 1024, "GiB": 1024**2, "G": 1024**2}


def _config_memory(xml: str) -> tuple[int, int]:
    """(currentMemory, memory) of a domain XML, in KiB."""
    values = {tag: int(int(number) * _UNIT_TO_KIB.get(unit or "KiB", 1)) for tag, unit, number in _XML_MEMORY.findall(xml)}
    maxmem = values.get("memory", 0)
    return values.get("currentMemory", maxmem), maxmem


def migration_parameters(migrate_uri: str | None, destination_xml: str | None, persistent_xml: str | None) -> tuple[dict, int]:
    """migrate3's parameters and flags: live, persistent on the destination, undefined on the source."""
    params = {}
    if migrate_uri:
        params[libvirt.VIR_MIGRATE_PARAM_URI] = migrate_uri
    if destination_xml:
        params[libvirt.VIR_MIGRATE_PARAM_DEST_XML] = destination_xml
    if persistent_xml:
        params[libvirt.VIR_MIGRATE_PARAM_PERSIST_XML] = persistent_xml
    return params, libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE


class LibvirtDriver:
    def __init__(self, uri: str):
        self.uri = uri

    # -- plumbing -------------------------------------------------------------------------------------------

    @property
    def conn(self) -> libvirt.virConnect:
        return pool.connection(self.uri)

    def _translate(self, exc: libvirt.libvirtError, what: str = "") -> DriverError:
        code, text = exc.get_error_code(), exc.get_error_message() or str(exc)
        if code in UNREACHABLE_CODES or "connection" in text.lower() and "closed" in text.lower():
            pool.discard(self.uri)
            return HostUnreachable(f"host unreachable: {self.uri} does not answer", detail=text, uri=self.uri)
        if code == libvirt.VIR_ERR_NO_DOMAIN:
            return DomainNotFound(f"{what or 'the domain'} is not defined on {self.uri}", detail=text)
        if code == libvirt.VIR_ERR_OPERATION_INVALID and "not running" in text:
            return DomainNotRunning(f"{what or 'the domain'} is not running: start it first", detail=text)
        if code == libvirt.VIR_ERR_OPERATION_INVALID and "maximum memory on an active domain" in text:
            return InvalidRequest(
                f"the maxmem of running {what or 'domain'} cannot change live: set it in the persistent config, "
                "which takes effect at the next boot",
                detail=text,
            )
        if code in (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED):
            return NotSupported(f"not supported by this hypervisor ({self.conn_type_safe()}): {text}", detail=text)
        if code == libvirt.VIR_ERR_INVALID_ARG or code == libvirt.VIR_ERR_OPERATION_INVALID:
            return InvalidRequest(text, detail=text)
        return DriverError(f"the hypervisor refused: {text}", detail=text)

    def conn_type_safe(self) -> str:
        try:
            return self.conn.getType()
        except (libvirt.libvirtError, DriverError):
            return self.uri

    def _lookup(self, uuid: str) -> libvirt.virDomain:
        try:
            return self.conn.lookupByUUIDString(uuid)
        except libvirt.libvirtError as exc:
            raise self._translate(exc, f"domain {uuid}") from exc

    @staticmethod
    def _state(code: int) -> str:
        return STATE_NAMES.get(code, "running")

    def _info(self, dom: libvirt.virDomain) -> DomainInfo:
        state, maxmem, memory, vcpus, cpu_time = dom.info()
        config_memory, config_maxmem = _config_memory(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        hv_id = dom.ID()
        return DomainInfo(
            uuid=dom.UUIDString(),
            name=dom.name(),
            hv_id=hv_id if hv_id >= 0 else None,
            state=self._state(state),
            vcpus=vcpus,
            memory_kib=memory,
            maxmem_kib=maxmem,
            config_memory_kib=config_memory,
            config_maxmem_kib=config_maxmem,
            cpu_time_ns=cpu_time,
        )

    # -- reading --------------------------------------------------------------------------------------------

    def host_info(self) -> HostInfo:
        try:
            conn = self.conn
            model, memory_mib, cpus, *_ = conn.getInfo()
            total_kib = memory_mib * 1024
            free_kib = None
            try:
                # getInfo reports one NUMA node on some machines; getMemoryStats covers the whole host.
                stats = conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS)
                total_kib, free_kib = stats.get("total", total_kib), stats.get("free")
            except libvirt.libvirtError:
                pass
            return HostInfo(conn.getHostname(), conn.getType(), total_kib, free_kib, cpus)
        except libvirt.libvirtError as exc:
            raise self._translate(exc) from exc

    def list_domains(self) -> list[DomainInfo]:
        try:
            return [self._info(dom) for dom in self.conn.listAllDomains()]
        except libvirt.libvirtError as exc:
            raise self._translate(exc) from exc

    def domain(self, uuid: str) -> DomainInfo | None:
        try:
            return self._info(self.conn.lookupByUUIDString(uuid))
        except libvirt.libvirtError as exc:
            error = self._translate(exc, f"domain {uuid}")
            if isinstance(error, DomainNotFound):
                return None
            raise error from exc

    def domain_xml(self, uuid: str, *, migratable: bool = False) -> str:
        flags = libvirt.VIR_DOMAIN_XML_MIGRATABLE if migratable else libvirt.VIR_DOMAIN_XML_INACTIVE
        try:
            return self._lookup(uuid).XMLDesc(flags)
        except libvirt.libvirtError as exc:
            raise self._translate(exc, f"domain {uuid}") from exc

    def bulk_stats(self) -> list[DomainStats]:
        """All domains in one call; per-domain info() only where the driver gives no balloon figures in bulk."""
        try:
            records = self.conn.getAllDomainStats(BULK_STATS_GROUPS)
            return [self._stats_from_record(dom, record) for dom, record in records]
        except libvirt.libvirtError as exc:
            raise self._translate(exc) from exc

    def _stats_from_record(self, dom: libvirt.virDomain, record: dict) -> DomainStats:
        state = self._state(record.get("state.state", 0))
        if "balloon.current" in record:
            memory, maxmem = record["balloon.current"], record.get("balloon.maximum", record["balloon.current"])
            vcpus, cpu_time = record.get("vcpu.current", 0), record.get("cpu.time", 0)
        else:
            _, maxmem, memory, vcpus, cpu_time = dom.info()
        hv_id = dom.ID()
        return DomainStats(
            uuid=dom.UUIDString(),
            name=dom.name(),
            hv_id=hv_id if hv_id >= 0 else None,
            state=state,
            vcpus=vcpus,
            memory_kib=memory,
            maxmem_kib=maxmem,
            cpu_time_ns=cpu_time,
            actual_kib=record.get("balloon.current"),
            unused_kib=record.get("balloon.unused"),
            available_kib=record.get("balloon.available"),
            usable_kib=record.get("balloon.usable"),
            rss_kib=record.get("balloon.rss"),
            last_update=record.get("balloon.last-update"),
        )

    # -- changing -------------------------------------------------------------------------------------------

    def set_memory(self, uuid: str, kib: int, *, live: bool, config: bool) -> None:
        dom = self._lookup(uuid)
        name = dom.name()
        try:
            if live:
                if not dom.isActive():
                    raise DomainNotRunning(f"{name} is not running: a live resize needs a running domain")
                maxmem = dom.maxMemory()
                if kib > maxmem:
                    raise AboveMaxMemory(
                        f"{format_mib(kib)} is above the maxmem of {name} ({format_mib(maxmem)}); "
                        "raise maxmem first, which a running domain takes at its next boot"
                    )
                dom.setMemoryFlags(kib, libvirt.VIR_DOMAIN_AFFECT_LIVE)
            if config:
                dom.setMemoryFlags(kib, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        except libvirt.libvirtError as exc:
            error = self._translate(exc, name)
            if "higher than max memory" in (exc.get_error_message() or ""):
                error = AboveMaxMemory(f"{format_mib(kib)} is above the maxmem of {name}", detail=str(exc))
            raise error from exc

    def set_maxmem(self, uuid: str, kib: int) -> None:
        """Persistent maxmem (libvirt cannot raise it live); a lower maxmem also caps the config's memory."""
        dom = self._lookup(uuid)
        try:
            config_memory, _ = _config_memory(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            dom.setMemoryFlags(kib, libvirt.VIR_DOMAIN_MEM_MAXIMUM | libvirt.VIR_DOMAIN_AFFECT_CONFIG)
            if config_memory > kib:
                dom.setMemoryFlags(kib, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        except libvirt.libvirtError as exc:
            raise self._translate(exc, dom.name()) from exc

    def define_and_start(self, config: DomainConfig) -> DomainInfo:
        """A new domain, running. One that this defined but could not start at its size is removed again: a
        failed creation leaves nothing behind that BalloonWeb would find at its next poll and not know of."""
        existed = self._named(config.name) is not None
        return self.define_xml_and_start(self.config_xml(config), start_memory_kib=config.memory_kib, remove_if_not_started=not existed)

    def _named(self, name: str):
        try:
            return self.conn.lookupByName(name)
        except libvirt.libvirtError:
            return None

    @staticmethod
    def _remove_quietly(dom) -> None:
        try:
            if dom.isActive():
                dom.destroy()
            dom.undefine()
        except libvirt.libvirtError:
            log.warning("could not remove %s after its failed creation", dom.name(), exc_info=True)

    def config_xml(self, config: DomainConfig) -> str:
        domain_type = {"Test": "test", "QEMU": "qemu"}.get(self.conn_type_safe(), "xen")
        uuid = f"<uuid>{escape(config.uuid)}</uuid>" if config.uuid else ""
        return (
            f"<domain type='{domain_type}'><name>{escape(config.name)}</name>{uuid}"
            f"<description>{escape(config.description)}</description>"
            f"<memory unit='KiB'>{config.maxmem_kib}</memory>"
            f"<currentMemory unit='KiB'>{config.memory_kib}</currentMemory>"
            f"<vcpu>{config.vcpus}</vcpu><os><type>hvm</type></os>"
            "<devices><memballoon model='virtio'/></devices></domain>"
        )

    def define_xml_and_start(self, xml: str, *, start_memory_kib: int | None = None, remove_if_not_started: bool = False,
                             persistent_xml: str | None = None) -> DomainInfo:
        """`remove_if_not_started`: the domain is new (the caller looked), and is undefined again if it was
        defined here but could not start; never when the define itself failed (another's domain of that name).
        `persistent_xml`: the config its next boot takes, when it differs from the one it runs with (a move)."""
        try:
            dom = self.conn.defineXML(xml)
        except libvirt.libvirtError as exc:
            raise self._translate(exc) from exc
        try:
            if not dom.isActive():
                dom.create()
            if start_memory_kib is not None and dom.info()[2] != start_memory_kib:
                dom.setMemoryFlags(start_memory_kib, libvirt.VIR_DOMAIN_AFFECT_LIVE)
            if persistent_xml is not None:
                self.conn.defineXML(persistent_xml)  # a running domain keeps its live config until it boots again
            return self._info(dom)
        except libvirt.libvirtError as exc:
            if remove_if_not_started:
                self._remove_quietly(dom)
            raise self._translate(exc) from exc

    def start(self, uuid: str) -> None:
        try:
            self._lookup(uuid).create()
        except libvirt.libvirtError as exc:
            raise self._translate(exc, f"domain {uuid}") from exc

    def shutdown(self, uuid: str) -> None:
        """Ask the guest to shut down (ACPI or its agent); it returns at once, and the guest may take its time,
        or ignore it."""
        try:
            self._lookup(uuid).shutdown()
        except libvirt.libvirtError as exc:
            raise self._translate(exc, f"domain {uuid}") from exc

    def destroy(self, uuid: str) -> None:
        try:
            self._lookup(uuid).destroy()
        except libvirt.libvirtError as exc:
            raise self._translate(exc, f"domain {uuid}") from exc

    def undefine(self, uuid: str) -> None:
        dom = self._lookup(uuid)
        try:
            if dom.isActive():
                dom.destroy()
            dom.undefine()
        except libvirt.libvirtError as exc:
            raise self._translate(exc, f"domain {uuid}") from exc

    def migrate(
        self,
        uuid: str,
        destination: "LibvirtDriver",
        progress: ProgressCallback | None = None,
        stop_requested: StopRequested | None = None,
        *,
        migrate_uri: str | None = None,
        destination_xml: str | None = None,
        persistent_xml: str | None = None,
    ) -> MigrationResult:
        """Live migration, persistent on the destination and undefined on the source.

        `destination_xml` is the running domain's definition on the destination; `persistent_xml` the config it
        keeps there (without it, the destination keeps the source's config, file paths and all).
        The call blocks; meanwhile this thread reads libvirt's job info and reports progress, and aborts the
        migration once `stop_requested()` says so (the guest then goes on running here, as before).
        """
        self.wait_for_balloon_to_settle(uuid)
        dom = self._lookup(uuid)
        params, flags = migration_parameters(migrate_uri, destination_xml, persistent_xml)
        outcome: dict = {}

        def run() -> None:
            try:
                dom.migrate3(destination.conn, params, flags)
            except libvirt.libvirtError as exc:
                outcome["error"] = exc
            except DriverError as exc:
                outcome["driver_error"] = exc

        worker = threading.Thread(target=run, name=f"migrate-{uuid}", daemon=True)
        worker.start()
        stop_asked = aborted = False
        reached = 0
        while worker.is_alive():
            worker.join(MIGRATION_POLL_S)
            if not worker.is_alive():
                break
            if stop_requested and not stop_asked:
                stop_asked = stop_requested()
            if stop_asked and not aborted:
                try:
                    dom.abortJob()
                    aborted = True
                except libvirt.libvirtError:
                    pass  # its job has not begun yet, or has just ended: try again at the next poll
            if progress:
                report = self._migration_progress(dom)
                if report:
                    reached = report.percent
                    progress(report)
        if "driver_error" in outcome:
            raise outcome["driver_error"]
        if "error" in outcome:
            error = outcome["error"]
            if aborted and error.get_error_code() == libvirt.VIR_ERR_OPERATION_ABORTED:
                raise MigrationStopped(
                    f"stopped on request at {reached} %", detail=error.get_error_message() or str(error)
                ) from error
            raise self._translate(error, dom.name()) from error
        if progress:
            progress(MigrationProgress(100))
        return MigrationResult(simulated=False)

    def wait_for_balloon_to_settle(self, uuid: str, timeout_s: float = BALLOON_SETTLE_TIMEOUT_S) -> None:
        """Return once the balloon has stopped moving and libvirt's own figure has caught up with it.

        QEMU tells libvirt of balloon moves by BALLOON_CHANGE events, at most one a second, so libvirt's figure
        (info(), bulk stats, the XML's currentMemory) lags the guest by up to a second. A migration started in
        that window carries the stale figure to the destination, whose libvirt then keeps it until the balloon
        next moves (seen in the lab: 511 MiB reported for a guest at 384 MiB). memoryStats() asks QEMU itself.
        On timeout it returns anyway: a stale figure is no reason to refuse a migration.
        """
        dom = self._lookup(uuid)
        deadline = time.monotonic() + timeout_s
        previous = None
        while time.monotonic() < deadline:
            try:
                actual = dom.memoryStats().get("actual") if dom.isActive() else None
                believed = dom.info()[2]
            except libvirt.libvirtError as exc:
                raise self._translate(exc, dom.name()) from exc
            if actual is None or actual == previous == believed:
                return  # no live balloon figure here (test driver, shut off), or settled
            previous = actual
            time.sleep(BALLOON_SETTLE_POLL_S)

    @staticmethod
    def _migration_progress(dom: libvirt.virDomain) -> MigrationProgress | None:
        try:
            stats = dom.jobStats()
        except libvirt.libvirtError:
            return None
        total, processed = stats.get("memory_total"), stats.get("memory_processed")
        remaining = stats.get("memory_remaining")
        if not total:
            return None
        percent = min(99, int(100 * (total - (remaining or 0)) / total)) if remaining is not None else 0
        return MigrationProgress(percent, (processed or 0) // 1024, (remaining or 0) // 1024)
