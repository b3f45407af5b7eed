"""Hypervisor drivers: the only package that imports libvirt. Callers use `driver_for(uri)`."""

import threading
from collections.abc import Iterable

from .base import DomainConfig, DomainInfo, DomainStats, HostInfo, MigrationProgress, MigrationResult
from .errors import (
    AboveMaxMemory,
    DomainNotFound,
    DomainNotRunning,
    DriverError,
    GuestDidNotShutDown,
    HostUnreachable,
    InvalidRequest,
    MigrationStopped,
    NotSupported,
)
from . import pool
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
    "forget_hosts_except",
    "is_simulated_uri",
]

_drivers: dict[str, LibvirtDriver] = {}
_lock = threading.Lock()


def is_simulated_uri(uri: str) -> bool:
    return uri.split(":", 1)[0].split("+", 1)[0] == "test"


def forget_hosts_except(uris: Iterable[str]) -> list[str]:
    """Release this process's drivers and connections of hosts no longer registered (a host removed from
    BalloonWeb), whose keepalives would otherwise go on until the process ends. Returns the URIs released."""
    keep = set(uris)
    with _lock:
        for uri in [uri for uri in _drivers if uri not in keep]:
            del _drivers[uri]
    return pool.close_except(keep)


def driver_for(uri: str) -> LibvirtDriver:
    """The driver for a libvirt URI; the test driver is a simulated host."""
    with _lock:
        driver = _drivers.get(uri)
        if driver is None:
            driver = _drivers[uri] = SimulatedDriver(uri) if is_simulated_uri(uri) else LibvirtDriver(uri)
        return driver
