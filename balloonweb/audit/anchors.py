"""Anchors: the chain's head, written outside the database, so that entries cut off the newest end are seen.

The MAC chain shows a changed, inserted or removed entry anywhere but at the newest end: delete the last ten
entries and what is left is still a whole chain. So every minute (Celery beat, `anchor_head`) the head, its id
and MAC, is appended to a file beside the HMAC key (AUDIT_ANCHOR_FILE), where someone who can write the table
cannot; `audit verify` checks that the newest anchored entry is still there with the same MAC. What can go
unseen is at most the entries of the last minute. For more, keep the head `audit verify` prints elsewhere too
and check it with `audit verify --head ID:MAC`.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from balloonweb.ids import as_id

from .chain import CHECKPOINT
from .models import AuditEntry


@dataclass(frozen=True)
class Anchor:
    entry_id: int
    mac: str

    @classmethod
    def parse(cls, text: str) -> "Anchor":
        """ID:MAC, as `audit verify` prints the head."""
        entry_id, _, mac = text.partition(":")
        if as_id(entry_id) is None or len(mac) != 64:
            raise ValueError(f"a head is ID:MAC, as `audit verify` prints it (a number, a colon, 64 hex digits), not {text!r}")
        return cls(int(entry_id), mac)


def anchor_file() -> Path:
    return Path(settings.AUDIT_ANCHOR_FILE)


def head() -> Anchor | None:
    row = AuditEntry.objects.order_by("-id").values_list("id", "mac").first()
    return Anchor(*row) if row else None


def latest() -> Anchor | None:
    """The newest anchor in the file, or None if there is none yet."""
    try:
        lines = anchor_file().read_text().splitlines()
    except FileNotFoundError:
        return None
    for line in reversed(lines):
        if line.strip():
            data = json.loads(line)
            return Anchor(data["id"], data["mac"])
    return None


def write_anchor() -> Anchor | None:
    """Append the head to the anchor file, unless it is the newest anchor already."""
    current = head()
    if current is None or current == latest():
        return current
    path = anchor_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"at": timezone.now().isoformat(timespec="seconds"), "id": current.entry_id, "mac": current.mac})
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as out:
        out.write(line + "\n")
    return current


def problem_with(anchor: Anchor) -> str | None:
    """Why the table does not hold the anchored entry as it was, or None when it does."""
    entry = AuditEntry.objects.filter(id=anchor.entry_id).values_list("mac", flat=True).first()
    if entry is not None:
        if entry != anchor.mac:
            return f"entry {anchor.entry_id} no longer has the MAC it was anchored with: it was replaced"
        return None
    newest = AuditEntry.objects.order_by("-id").values_list("id", flat=True).first()
    if newest is None or newest < anchor.entry_id:
        return (f"entry {anchor.entry_id} was anchored but the chain now ends at {newest or 'nothing'}: "
                "entries were cut off its newest end")
    first = AuditEntry.objects.order_by("id").first()
    if first is not None and first.action == CHECKPOINT and anchor.entry_id <= first.after.get("last_id", 0):
        return None  # archived: `audit verify --archive FILE` checks it there
    return f"entry {anchor.entry_id} was anchored but is missing from the chain"
