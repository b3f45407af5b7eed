"""Xen-style domain config files, as `xm create` reads them:

    name   = "foo"
    memory = 1024
    maxmem = 4096
    vcpus  = 1

Sizes are MiB when bare (units as in hosts.units are accepted too); maxmem defaults to memory.
"""

import re
import uuid as uuid_module

from hosts.drivers import DomainConfig
from hosts.units import BadSize, format_mib, parse_memory_kib

KNOWN_KEYS = {"name", "memory", "maxmem", "vcpus", "uuid", "description"}
_LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.+?)\s*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


class ConfigError(ValueError):
    pass


def _value(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1]
    return raw


def parse_xen_config(text: str) -> DomainConfig:
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = _LINE.match(line)
        if not match:
            raise ConfigError(f"line {number}: expected `key = value`, got {line!r}")
        key, raw = match.groups()
        if key in KNOWN_KEYS:
            values[key] = _value(raw)
    for required in ("name", "memory"):
        if required not in values:
            raise ConfigError(f"the config has no `{required}`; it needs at least name and memory")
    name = values["name"]
    if not _NAME.match(name):
        raise ConfigError(f"name {name!r}: use letters, digits and . _ + - (at most 64), starting with a letter or digit")
    try:
        memory_kib = parse_memory_kib(values["memory"])
        maxmem_kib = parse_memory_kib(values["maxmem"]) if "maxmem" in values else memory_kib
    except BadSize as exc:
        raise ConfigError(f"memory: {exc}") from exc
    if maxmem_kib < memory_kib:
        raise ConfigError(f"maxmem ({format_mib(maxmem_kib)}) is below memory ({format_mib(memory_kib)})")
    try:
        vcpus = int(values.get("vcpus", "1"))
    except ValueError:
        raise ConfigError(f"vcpus {values['vcpus']!r} is not a whole number") from None
    if not 1 <= vcpus <= 512:
        raise ConfigError(f"vcpus {vcpus} is out of range 1..512")
    domain_uuid = values.get("uuid")
    if domain_uuid:
        try:
            domain_uuid = str(uuid_module.UUID(domain_uuid))
        except ValueError:
            raise ConfigError(f"uuid {domain_uuid!r} is not a UUID") from None
    return DomainConfig(name, memory_kib, maxmem_kib, vcpus, domain_uuid, values.get("description", ""))
