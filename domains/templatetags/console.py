"""Numbers as the pages show them: memory in MiB with its unit, times in seconds."""

from django import template

from hosts.units import format_bound, format_mib, typed_size

register = template.Library()

NONE = "—"


register.filter("mib", format_mib)
register.filter("typed_size", typed_size)
register.filter("bound", format_bound)


@register.filter
def mib_at_least(kib: int) -> str:
    """A slider's lower end in whole MiB, never below `kib`."""
    return str(-(-kib // 1024))


@register.filter
def mib_number(kib: int | None) -> str:
    """For table cells whose heading carries the unit: 8388608 -> '8192'."""
    return NONE if kib is None else str(kib // 1024)


@register.filter
def share(percent: float | None) -> str:
    """A share in percent for a table cell: 38.4 -> '38 %'; None (no figure) -> '—'."""
    return NONE if percent is None else f"{percent:.0f} %"


@register.filter
def cpu_seconds(ns: int | None) -> str:
    return NONE if ns is None else f"{ns / 1e9:,.1f}"


@register.filter
def duration(seconds: float | None) -> str:
    if seconds is None:
        return NONE
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


@register.filter
def pct(value: float) -> str:
    """A width for a style attribute, with a dot whatever the locale."""
    return f"{float(value):.2f}%"
