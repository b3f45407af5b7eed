"""Hand-made snapshots: guests report what the simulated fleet's guests report (hosts/simulation/demand.py)."""


from domains.autoscaler.snapshot import (
    MODE_AUTOMATIC,
    DomainPolicy,
    DomainSnapshot,
    HostPolicy,
    HostSnapshot,
    Snapshot,
)

MiB = 1024
GiB = 1024 * MiB


def guest(id: int, host_id: int, *, used: int, memory: int, maxmem: int = 8 * GiB, floor: int = 512 * MiB,
          actual: int | None = None, policy: DomainPolicy = DomainPolicy(), **fields) -> DomainSnapshot:
    """A running domain whose guest uses `used` KiB of what it has (3 % of it kept by the guest kernel)."""
    actual = memory if actual is None else actual
    available = actual * 97 // 100
    used = min(used, available)
    return DomainSnapshot(
        id=id, name=fields.pop("name", f"d{id}"), host_id=host_id, running=True, memory_kib=memory,
        maxmem_kib=maxmem, floor_kib=floor, actual_kib=actual, available_kib=available,
        unused_kib=available - used, policy=policy, **fields,
    )


def host(id: int, usable: int, *, mode: str = MODE_AUTOMATIC, target_use: float = 1.0, **fields) -> HostSnapshot:
    policy = fields.pop("policy", HostPolicy(mode=mode, target_use=target_use))
    return HostSnapshot(id=id, name=fields.pop("name", f"hv{id}"), usable_kib=usable, policy=policy, **fields)


def snapshot(hosts: list[HostSnapshot], domains: list[DomainSnapshot], now: float = 1000.0) -> Snapshot:
    return Snapshot(hosts, domains, now)


def steady_target(used: int, actual: int, free_share: float = 0.20) -> int:
    """What the controller should ask for a guest using `used` of `actual`: used / (1 - free share), counted in
    guest memory (actual per KiB available), rounded up to a MiB."""
    overhead = actual / (actual * 97 // 100)
    return -(-int(used * overhead / (1 - free_share)) // MiB) * MiB
