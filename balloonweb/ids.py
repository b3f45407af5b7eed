"""Ids as people and scripts type them, in one place: str.isdigit() also takes '²' and '٣', which int() refuses
or reads otherwise, and a number past 64 bits overflows the database's integer columns (a 500 on SQLite)."""

import re

ID = re.compile(r"[0-9]{1,18}")


def as_id(text: str | int | None) -> int | None:
    """The row id that `text` spells (ASCII digits, within a 64-bit column), else None."""
    text = str(text if text is not None else "").strip()
    return int(text) if ID.fullmatch(text) else None
