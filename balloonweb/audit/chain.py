"""The MAC chain that makes the audit log tamper-evident.

mac(entry) = HMAC-SHA256(key, canonical(entry) + "\n" + mac(previous entry)), in id order; the very first
entry chains on "". A checkpoint (written by `audit archive` in place of the entries it archived) chains on ""
too and carries, signed, the MAC of the last archived entry, on which the next entry's MAC goes on.

The key is kept outside the database: AUDIT_HMAC_KEY, or the file AUDIT_HMAC_KEY_FILE (created 0600 with a
random key on first use). Someone who can write the table but cannot read the key cannot forge a MAC.
"""

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.db import connection

CHECKPOINT = "audit.checkpoint"
# Any constant: the key of PostgreSQL's advisory lock that serialises appends to the chain.
ADVISORY_LOCK_KEY = 0x42A0D17

SIGNED_FIELDS = (
    "id", "at", "actor_kind", "actor_label", "actor_user_id", "action", "object_type", "object_id", "object_repr",
    "team_id", "host_id", "domain_id", "before", "after", "result", "message", "job_id", "request_id", "client_ip",
)


@lru_cache(maxsize=1)
def key() -> bytes:
    configured = getattr(settings, "AUDIT_HMAC_KEY", "")
    if configured:
        return configured.encode()
    path = Path(settings.AUDIT_HMAC_KEY_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: of two processes starting at once, one creates the key and the other reads it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
    text = path.read_text().strip()
    if not text:
        raise RuntimeError(f"the audit key file {path} is empty")
    return text.encode()


def canonical(entry) -> bytes:
    """The signed content: every field but the MAC, as sorted JSON (jsonb reorders keys; this does not care)."""
    values = {name: getattr(entry, name) for name in SIGNED_FIELDS}
    values["at"] = entry.at.isoformat(timespec="microseconds")
    values["client_ip"] = entry.client_ip or None
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def mac(entry, previous_mac: str) -> str:
    return hmac.new(key(), canonical(entry) + b"\n" + previous_mac.encode(), hashlib.sha256).hexdigest()


def lock() -> None:
    """Serialise appends until the transaction ends. SQLite needs nothing: BEGIN IMMEDIATE (see settings)
    already gives a writing transaction the whole database."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])


def next_link(entry) -> str:
    """The MAC the entry after `entry` chains on."""
    if entry is None:
        return ""
    if entry.action == CHECKPOINT:
        # A checkpoint's own MAC proves it; the chain goes on from the last entry it archived.
        return entry.after["last_mac"]
    return entry.mac


@dataclass
class Break:
    entry_id: int
    reason: str

    def __str__(self) -> str:
        return f"audit entry {self.entry_id}: {self.reason}"


def verify(entries) -> tuple[int, Break | None]:
    """Walk entries in id order; return (how many were checked, the first break or None)."""
    previous = None
    count = 0
    for entry in entries:
        count += 1
        if entry.action == CHECKPOINT:
            if previous is not None:
                return count, Break(entry.id, "a checkpoint in the middle of the chain (entries before it were inserted)")
            if not hmac.compare_digest(entry.mac, mac(entry, "")):
                return count, Break(entry.id, "the checkpoint's MAC does not match its content (changed, or signed with another key)")
        else:
            expected_previous = "" if previous is None else next_link(previous)
            if previous is not None and entry.id <= previous.id:
                return count, Break(entry.id, "out of order")
            if not hmac.compare_digest(entry.mac, mac(entry, expected_previous)):
                if previous is None:
                    reason = "the first entry does not start the chain (entries before it were removed, or it was changed)"
                else:
                    reason = (
                        f"its MAC does not match its content and the MAC of entry {previous.id} "
                        "(this entry was changed, or entries between them were removed or inserted)"
                    )
                return count, Break(entry.id, reason)
        previous = entry
    return count, None
