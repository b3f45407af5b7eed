"""What a lab guest says about itself: the report lines its /init prints to the serial console (a file).

A line looks like `LAB up=12.34 total=468548 free=406588 avail=406256 demand=32 held=32 short=0`: uptime in
seconds, MemTotal/MemFree/MemAvailable in KiB, demand/held/short in MiB (see guest.py).
"""

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_REPORT = re.compile(
    r"LAB up=(?P<up>[\d.]+) total=(?P<total>\d+) free=(?P<free>\d+) avail=(?P<avail>\d+) "
    r"demand=(?P<demand>\d+) held=(?P<held>\d+) short=(?P<short>-?\d+)"
)
_SERIAL_SOURCE = re.compile(r"<serial type='file'>\s*<source path='([^']+)'")
TAIL_BYTES = 4096  # a few dozen report lines


@dataclass(frozen=True)
class GuestReport:
    uptime_s: float
    memtotal_kib: int
    memfree_kib: int
    memavailable_kib: int
    demand_mib: int
    held_mib: int
    short_mib: int


def parse_reports(text: str) -> list[GuestReport]:
    return [
        GuestReport(
            float(m["up"]), int(m["total"]), int(m["free"]), int(m["avail"]), int(m["demand"]), int(m["held"]), int(m["short"])
        )
        for m in _REPORT.finditer(text)
    ]


def last_report(console: Path) -> GuestReport | None:
    """The guest's latest report, or None if it has printed none (yet) or the file is not there."""
    try:
        with open(console, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - TAIL_BYTES))
            reports = parse_reports(f.read().decode(errors="replace"))
    except OSError:
        return None
    return reports[-1] if reports else None


def wait_for_report(
    console: Path, accept: Callable[[GuestReport], bool], timeout_s: float, poll_s: float = 0.2
) -> GuestReport:
    """The first latest report that `accept` takes; TimeoutError with the last one seen otherwise."""
    deadline = time.monotonic() + timeout_s
    report = None
    while time.monotonic() < deadline:
        report = last_report(console)
        if report is not None and accept(report):
            return report
        time.sleep(poll_s)
    raise TimeoutError(f"no accepted report on {console} within {timeout_s} s; last: {report}")


def console_path(live_xml: str) -> Path | None:
    """The serial console file of a running domain, from its live XML (a migrated guest writes a new file)."""
    match = _SERIAL_SOURCE.search(live_xml)
    return Path(match.group(1)) if match else None
