"""Xen-style domain config files, as `xm create` reads them:

    name   = "foo"
    memory = 1024
    maxmem = 4096
    vcpus  = 1

Sizes are MiB when bare (units as in hosts.units are accepted too); maxmem defaults to memory. Comments, quotes
and values in brackets over several lines are read as Python reads them (Xen configs are Python); a key other
than those BalloonWeb sets up (KNOWN_KEYS) is refused rather than left out: a disk or a typo would be lost.
"""

import ast
import re
import uuid as uuid_module

from hosts.drivers import DomainConfig
from hosts.units import BadSize, format_mib, parse_memory_kib

KNOWN_KEYS = {"name", "memory", "maxmem", "vcpus", "uuid", "description"}
_LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.+?)\s*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


class ConfigError(ValueError):
    pass


def _value(raw: str, number: int) -> str:
    """A quoted value as Python reads it (escapes and all); a bare one as it is (sizes such as 4G)."""
    if raw[:1] in "\"'":
        try:
            value = ast.literal_eval(raw)
        except (SyntaxError, ValueError):
            raise ConfigError(f"line {number}: {raw!r} is not a quoted string") from None
        if isinstance(value, str):
            return value
    return raw


def _statements(text: str):
    """(first line number, text) of each `key = value`, without comments (a # outside quotes), a value in brackets
    taking as many lines as it needs, as Python (which Xen configs are) reads them."""
    start, parts, depth = 0, [], 0
    for number, line in enumerate(text.splitlines(), start=1):
        quote, kept, escaped = "", [], False
        for char in line:
            if quote:
                if escaped:
                    escaped = False
                elif char == "\\":
                    escaped = True
                elif char == quote:
                    quote = ""
            elif char in "\"'":
                quote = char
            elif char == "#":
                break
            else:
                depth += (char in "[(") - (char in "])")
            kept.append(char)
        code = "".join(kept).strip()
        if not code and not parts:
            continue
        start = start or number
        parts.append(code)
        if depth <= 0:
            yield start, " ".join(part for part in parts if part)
            start, parts, depth = 0, [], 0
    if parts:
        yield start, " ".join(parts)


def parse_xen_config(text: str) -> DomainConfig:
    values: dict[str, str] = {}
    for number, statement in _statements(text):
        match = _LINE.match(statement)
        if not match:
            raise ConfigError(f"line {number}: expected `key = value`, got {statement!r}")
        key, raw = match.groups()
        if key not in KNOWN_KEYS:
            # Left out silently, a disk, a network or a typo (maxmen) would give a domain other than the one asked.
            raise ConfigError(
                f"line {number}: BalloonWeb does not set up `{key}`: it creates a domain from {', '.join(sorted(KNOWN_KEYS))} "
                "only; remove the line, or define a domain with devices (disk, vif) by virsh, which BalloonWeb adopts at its next poll"
            )
        if key in values:
            raise ConfigError(f"line {number}: `{key}` is set twice")
        values[key] = _value(raw, number)
    for required in ("name", "memory"):
        if required not in values:
            raise ConfigError(f"the config has no `{required}`; it needs at least name and memory")
    name = values["name"]
    if not _NAME.match(name):
        raise ConfigError(f"name {name!r}: use letters, digits and . _ + - (at most 64), starting with a letter or digit")
    sizes = {}
    for key in ("memory", "maxmem"):
        try:
            sizes[key] = parse_memory_kib(values[key]) if key in values else sizes["memory"]
        except BadSize as exc:
            raise ConfigError(f"{key}: {exc}") from exc
    memory_kib, maxmem_kib = sizes["memory"], sizes["maxmem"]
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
