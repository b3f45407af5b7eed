"""What BalloonWeb needs from a hypervisor, as plain data and a small protocol. Memory is in KiB."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class HostInfo:
    hostname: str
    hypervisor: str
    total_kib: int
    free_kib: int | None
    cpus: int


@dataclass(frozen=True)
class DomainInfo:
    uuid: str
    name: str
    hv_id: int | None
    state: str
    vcpus: int
    memory_kib: int
    maxmem_kib: int
    config_memory_kib: int
    config_maxmem_kib: int
    cpu_time_ns: int


@dataclass(frozen=True)
class DomainStats:
    """One domain's figures from a bulk stats call; balloon values are None where the driver gives none."""

    uuid: str
    name: str
    hv_id: int | None
    state: str
    vcpus: int
    memory_kib: int
    maxmem_kib: int
    cpu_time_ns: int
    actual_kib: int | None = None
    unused_kib: int | None = None
    available_kib: int | None = None
    usable_kib: int | None = None
    rss_kib: int | None = None
    last_update: int | None = None


@dataclass(frozen=True)
class DomainConfig:
    """A domain to define, from a Xen-style config file."""

    name: str
    memory_kib: int
    maxmem_kib: int
    vcpus: int = 1
    uuid: str | None = None
    description: str = ""


@dataclass(frozen=True)
class MigrationProgress:
    percent: int
    processed_kib: int | None = None
    remaining_kib: int | None = None


@dataclass(frozen=True)
class MigrationResult:
    simulated: bool
    detail: str = ""


ProgressCallback = Callable[[MigrationProgress], None]
# Asked while a migration runs: True once someone wants it stopped.
StopRequested = Callable[[], bool]


class Driver(Protocol):
    uri: str

    def host_info(self) -> HostInfo: ...

    def list_domains(self) -> list[DomainInfo]: ...

    def domain(self, uuid: str) -> DomainInfo | None: ...

    def bulk_stats(self) -> list[DomainStats]: ...

    def set_memory(self, uuid: str, kib: int, *, live: bool, config: bool) -> None: ...

    def set_maxmem(self, uuid: str, kib: int) -> None: ...

    def define_and_start(self, config: DomainConfig) -> DomainInfo: ...

    def migrate(self, uuid: str, destination: "Driver", progress: ProgressCallback | None = None,
                stop_requested: StopRequested | None = None) -> MigrationResult: ...

    def start(self, uuid: str) -> None: ...

    def shutdown(self, uuid: str) -> None: ...

    def destroy(self, uuid: str) -> None: ...
