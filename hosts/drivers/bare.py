"""The bare libvirt calls behind a resize and a migration, timed, with none of BalloonWeb around them.

For benchmarks only (bench/lab.py): the time BalloonWeb adds is its own figure minus these. The flags are
the ones LibvirtDriver uses, so that the comparison is fair.
"""

import json
import time

import libvirt
import libvirt_qemu

from . import pool
from .libvirt_driver import migration_parameters


def time_set_memory_live(uri: str, uuid: str, kib: int) -> float:
    """Seconds that `setMemoryFlags(kib, AFFECT_LIVE)` takes to return (the balloon moves afterwards)."""
    dom = pool.connection(uri).lookupByUUIDString(uuid)
    started = time.perf_counter()
    dom.setMemoryFlags(kib, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    return time.perf_counter() - started


def time_migrate(
    source_uri: str,
    destination_uri: str,
    uuid: str,
    *,
    migrate_uri: str | None = None,
    destination_xml: str | None = None,
    persistent_xml: str | None = None,
) -> float:
    """Seconds that a live `migrate3` (persistent on the destination, undefined on the source) takes."""
    dom = pool.connection(source_uri).lookupByUUIDString(uuid)
    destination = pool.connection(destination_uri)
    params, flags = migration_parameters(migrate_uri, destination_xml, persistent_xml)
    started = time.perf_counter()
    dom.migrate3(destination, params, flags)
    return time.perf_counter() - started


def qemu_balloon_kib(uri: str, uuid: str) -> int:
    """The balloon's size as QEMU holds it this instant (QMP `query-balloon`), in KiB.

    libvirt's own figure follows QEMU's BALLOON_CHANGE events, which QEMU sends at most once a second, so it
    lags by up to a second; this does not. It marks the domain "tainted: custom-monitor" in libvirt's log.
    """
    dom = pool.connection(uri).lookupByUUIDString(uuid)
    reply = json.loads(libvirt_qemu.qemuMonitorCommand(dom, '{"execute": "query-balloon"}', 0))
    return reply["return"]["actual"] // 1024


def time_bulk_reads(uris: list[str], threads: int) -> float:
    """Seconds to read every domain's memory on every host with the fewest libvirt calls, in `threads` threads:
    one getAllDomainStats per host, plus info() per domain where the bulk call carries no balloon figures (as
    the libvirt test driver). The floor under one poll cycle (bench/poll.py)."""
    from concurrent.futures import ThreadPoolExecutor

    from .libvirt_driver import BULK_STATS_GROUPS

    def read(uri: str) -> int:
        records = pool.connection(uri).getAllDomainStats(BULK_STATS_GROUPS)
        for dom, record in records:
            if "balloon.current" not in record:
                dom.info()
        return len(records)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as executor:
        list(executor.map(read, uris))
    return time.perf_counter() - started
