"""Hypervisor drivers: the only package that imports libvirt. Callers use `driver_for(uri)`."""

import threading

from .base import DomainConfig, DomainInfo, DomainStats, HostInfo, MigrationProgress, MigrationResult
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
from .libvirt_driver import LibvirtDriver
from .simulated import SimulatedDriver

__all__ = [
    "AboveMaxMemory",
    "DomainConfig",
    "DomainInfo",
    "DomainNotFound",
    "DomainNotRunning",
    "DomainStats",
    "DriverError",
    "HostInfo",
    "HostUnreachable",
    "InvalidRequest",
    "LibvirtDriver",
    "MigrationProgress",
    "MigrationStopped",
    "MigrationResult",
    "NotSupported",
    "driver_for",
    "is_simulated_uri",
]

_drivers: dict[str, LibvirtDriver] = {}
_lock = threading.Lock()


def is_simulated_uri(uri: str) -> bool:
    return uri.split(":", 1)[0].split("+", 1)[0] == "test"


def driver_for(uri: str) -> LibvirtDriver:
    """The driver for a libvirt URI; the test driver is a simulated host."""
    with _lock:
        driver = _drivers.get(uri)
        if driver is None:
            driver = _drivers[uri] = SimulatedDriver(uri) if is_simulated_uri(uri) else LibvirtDriver(uri)
        return driver
