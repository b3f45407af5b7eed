"""Memory sizes as people type them, `xm`-style: a bare number is MiB. Everything inside is KiB."""

import re

# A unit is K, M, G or T, with iB or B after it or not; "B" alone (bytes?) is not taken for MiB.
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([KMGT])(?:I?B)?)?\s*$", re.IGNORECASE)
_KIB_PER = {"K": 1, "": 1024, "M": 1024, "G": 1024**2, "T": 1024**3}
ACCEPTED_FORMS = "a whole number of MiB (512), or with a unit: 512M, 4G, 524288K"
# 1 PiB: more than any host has; past it a size is a typo (and a few hundred digits overflow a float).
MAX_KIB = 1024**4


class BadSize(ValueError):
    pass


def parse_memory_kib(text: str | int) -> int:
    """'512' -> 524288, '4G' -> 4194304, '524288K' -> 524288. Raises BadSize naming the accepted forms."""
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    match = _SIZE.match(str(text))
    if not match:
        raise BadSize(f"{text!r} is not a memory size; use {ACCEPTED_FORMS}")
    number, unit = match.groups()
    kib = float(number) * _KIB_PER[(unit or "").upper()]
    if not kib <= MAX_KIB:
        raise BadSize(f"{text!r} is more than 1 PiB, more than any host has; use {ACCEPTED_FORMS}")
    if kib != int(kib) or kib <= 0:
        raise BadSize(f"{text!r} is not a positive whole number of KiB; use {ACCEPTED_FORMS}")
    if kib % 1024 and (unit or "").upper() != "K":  # "0.5" or "1.3M": a part of a MiB only where KiB are meant
        raise BadSize(f"{text!r} is not a whole number of MiB; use {ACCEPTED_FORMS}")
    return int(kib)


def mib(kib: int | None) -> int | None:
    """KiB as the whole MiB that the API and `xm` columns give: 8388608 -> 8192."""
    return None if kib is None else kib // 1024


def format_mib(kib: int | None) -> str:
    """KiB as every page, message and reason says it: 8388608 -> '8,192 MiB'; None (no figure) -> '—'."""
    return "—" if kib is None else f"{kib // 1024:,} MiB"


def format_bound(kib: int) -> str:
    """A bound people set (floor, maxmem), exactly: one given in K shows its part of a MiB. Rounded down, a floor
    of 1000000K read "976 MiB", and "976 MiB is below the floor (976 MiB)" followed."""
    return format_mib(kib) if kib % 1024 == 0 else f"{kib / 1024:,.2f} MiB"


def typed_size(kib: int) -> str:
    """KiB as a person would type them back into a size field: in MiB when whole, else in K (exact)."""
    return str(kib // 1024) if kib % 1024 == 0 else f"{kib}K"
