"""The audit chain: append-only, tamper-evident, archivable without breaking it."""

import json
import os
import stat
import threading

import pytest
from django.core.management import CommandError
from django.db import IntegrityError, InternalError, ProgrammingError, connection, connections, transaction
from django.utils import timezone

from balloonweb.access.actors import Actor
from balloonweb.audit import chain
from balloonweb.audit.log import record
from balloonweb.audit.models import AppendOnly, AuditEntry
from balloonweb.audit.tasks import anchor_head

TABLE = AuditEntry._meta.db_table
on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger exists on PostgreSQL only")


def raw(sql: str, params=()):
    """SQL straight at the table, as an intruder with database access would; on PostgreSQL past the trigger
    (session_replication_role=replica switches triggers off, as a superuser can)."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params)


def test_a_whole_chain_verifies(entries, audit_cmd):
    code, out = audit_cmd("verify")
    assert code == 0, out
    assert "OK: 5 entries verified" in out and f"head: entry {entries[-1].id}" in out


def test_ids_are_consecutive_and_each_mac_chains_on_the_previous(entries):
    assert [e.id for e in entries] == list(range(entries[0].id, entries[0].id + 5))
    stored = list(AuditEntry.objects.order_by("id"))
    for previous, entry in zip(stored, stored[1:]):
        assert entry.mac == chain.mac(entry, previous.mac)


def test_a_row_changed_with_raw_sql_is_named_by_verify(entries, audit_cmd):
    victim = entries[2]
    raw(f"UPDATE {TABLE} SET message = %s WHERE id = %s", ["nothing happened here", victim.id])
    code, out = audit_cmd("verify")
    assert code == 1
    assert f"audit entry {victim.id}:" in out and "does not match its content" in out


def test_a_row_deleted_with_raw_sql_breaks_the_chain_at_the_next_one(entries, audit_cmd):
    raw(f"DELETE FROM {TABLE} WHERE id = %s", [entries[1].id])
    code, out = audit_cmd("verify")
    assert code == 1 and f"audit entry {entries[2].id}:" in out


def test_a_forged_mac_without_the_key_does_not_pass(entries, audit_cmd):
    """Rewriting content and recomputing the MAC with a guessed key still breaks at that entry."""
    import hashlib
    import hmac

    victim = AuditEntry.objects.get(id=entries[3].id)
    victim.message = "forged"
    forged = hmac.new(b"guess", chain.canonical(victim) + b"\n" + entries[2].mac.encode(), hashlib.sha256).hexdigest()
    raw(f"UPDATE {TABLE} SET message = %s, mac = %s WHERE id = %s", ["forged", forged, victim.id])
    code, out = audit_cmd("verify")
    assert code == 1 and f"audit entry {victim.id}:" in out


def test_removing_the_oldest_entries_is_seen(entries, audit_cmd):
    raw(f"DELETE FROM {TABLE} WHERE id <= %s", [entries[1].id])
    code, out = audit_cmd("verify")
    assert code == 1 and f"audit entry {entries[2].id}:" in out and "does not start the chain" in out


def test_entries_cut_off_the_newest_end_are_seen_through_the_anchor(entries, audit_cmd, anchor_file):
    assert anchor_head() == entries[-1].id  # what beat runs every minute
    assert json.loads(anchor_file.read_text().splitlines()[-1])["id"] == entries[-1].id
    assert os.stat(anchor_file).st_mode & 0o777 == 0o600
    raw(f"DELETE FROM {TABLE} WHERE id >= %s", [entries[3].id])
    code, out = audit_cmd("verify")
    assert code == 1, out
    assert f"entry {entries[-1].id} was anchored but the chain now ends at {entries[2].id}" in out
    assert "cut off its newest end" in out


def test_without_an_anchor_a_cut_chain_still_verifies_but_a_kept_head_catches_it(entries, audit_cmd):
    code, out = audit_cmd("verify")
    kept = out.split("as --head: ")[1].split(")")[0]
    assert kept == f"{entries[-1].id}:{entries[-1].mac}"
    raw(f"DELETE FROM {TABLE} WHERE id = %s", [entries[-1].id])
    assert audit_cmd("verify")[0] == 0  # the MAC chain alone cannot see the newest end go
    code, out = audit_cmd("verify", "--head", kept)
    assert code == 1 and "cut off its newest end" in out


def test_an_anchor_holds_while_entries_are_added(entries, audit_cmd):
    anchor_head()
    record(Actor.command_line(), "test.action", message="later")
    anchor_head()
    anchor_head()  # an unchanged head is not written twice
    code, out = audit_cmd("verify")
    assert code == 0 and "anchored head" in out, out


def test_a_malformed_head_is_refused_saying_what_a_head_looks_like(entries, audit_cmd):
    with pytest.raises(CommandError, match="a head is ID:MAC"):
        audit_cmd("verify", "--head", "12")


def test_the_orm_refuses_changes(entries):
    entry = AuditEntry.objects.get(id=entries[0].id)
    entry.message = "changed"
    with pytest.raises(AppendOnly):
        entry.save()
    with pytest.raises(AppendOnly):
        entry.delete()
    with pytest.raises(AppendOnly):
        AuditEntry.objects.filter(id=entry.id).update(message="changed")
    with pytest.raises(AppendOnly):
        AuditEntry.objects.all().delete()


@on_postgresql
def test_postgresql_refuses_delete_and_update(entries):
    for sql in (f"DELETE FROM {TABLE} WHERE id = %s", f"UPDATE {TABLE} SET message = 'x' WHERE id = %s"):
        with pytest.raises((InternalError, ProgrammingError, IntegrityError)) as refused:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql, [entries[0].id])
        assert "append-only" in str(refused.value)
    assert AuditEntry.objects.filter(id=entries[0].id, message="entry 0").exists()


def test_archive_keeps_the_rest_verifiable(db, audit_cmd, tmp_path):
    actor = Actor.command_line()
    old = [record(actor, "test.old", message=f"old {i}") for i in range(3)]
    cutoff = timezone.now()
    new = [record(actor, "test.new", message=f"new {i}") for i in range(2)]
    archive = tmp_path / "archive.jsonl"
    code, out = audit_cmd("archive", "--before", cutoff.isoformat(), "--output", str(archive))
    assert code == 0, out
    ids = list(AuditEntry.objects.order_by("id").values_list("id", "action"))
    assert ids == [(old[-1].id, chain.CHECKPOINT), (new[0].id, "test.new"), (new[1].id, "test.new")]
    assert [json.loads(line)["id"] for line in archive.read_text().splitlines()] == [e.id for e in old]
    assert audit_cmd("verify")[0] == 0
    assert audit_cmd("verify", "--archive", str(archive))[0] == 0
    # The chain goes on after the checkpoint, and a second archive takes the checkpoint along.
    record(actor, "test.after", message="after")
    code, out = audit_cmd("archive", "--before", timezone.now().isoformat(), "--output", str(tmp_path / "second.jsonl"))
    assert code == 0, out
    assert audit_cmd("verify")[0] == 0 and audit_cmd("verify", "--archive", str(tmp_path / "second.jsonl"))[0] == 0


def test_the_checkpoint_stays_in_the_period_of_what_it_stands_for(db, audit_cmd, tmp_path):
    """Dated when the archive ran, among older entries, it fell out of a period filter (whose times are id
    bounds): the record that entries were removed did not show for the days they were removed from."""
    from datetime import timedelta

    from balloonweb.audit.review import in_period

    actor = Actor.command_line()
    old = [record(actor, "test.old") for _ in range(3)]
    cutoff = timezone.now()
    record(actor, "test.new")
    audit_cmd("archive", "--before", cutoff.isoformat(), "--output", str(tmp_path / "a.jsonl"))
    checkpoint = AuditEntry.objects.get(action=chain.CHECKPOINT)
    assert checkpoint.at == old[-1].at
    yesterday = timezone.now() - timedelta(days=1)
    assert checkpoint.pk in in_period(AuditEntry.objects.all(), yesterday, None).values_list("id", flat=True)
    assert audit_cmd("verify")[0] == 0


def test_a_changed_checkpoint_is_named(db, audit_cmd, tmp_path):
    actor = Actor.command_line()
    [record(actor, "test.old") for _ in range(3)]
    audit_cmd("archive", "--before", timezone.now().isoformat(), "--output", str(tmp_path / "a.jsonl"))
    checkpoint = AuditEntry.objects.get(action=chain.CHECKPOINT)
    raw(f"UPDATE {TABLE} SET message = %s WHERE id = %s", ["nothing archived", checkpoint.id])
    code, out = audit_cmd("verify")
    assert code == 1 and f"audit entry {checkpoint.id}:" in out


def test_export_with_filters(entries, audit_cmd, tmp_path):
    record(Actor.command_line(), "other.action", message="needle in here")
    code, out = audit_cmd("export", "--format", "jsonl", "--q", "needle")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["action"] for r in rows] == ["other.action"]
    target = tmp_path / "out.csv"
    code, _ = audit_cmd("export", "--format", "csv", "--action", "test.action", "--output", str(target))
    lines = target.read_text().splitlines()
    assert code == 0 and lines[0].startswith("id,at,actor_kind") and len(lines) == 6
    with pytest.raises(CommandError, match="--since"):
        audit_cmd("export", "--since", "yesterday-ish")


def test_the_key_file_is_created_private(settings, tmp_path):
    settings.AUDIT_HMAC_KEY = ""
    settings.AUDIT_HMAC_KEY_FILE = str(tmp_path / "sub" / "audit.key")
    chain.key.cache_clear()
    try:
        first = chain.key()
        assert stat.S_IMODE(os.stat(settings.AUDIT_HMAC_KEY_FILE).st_mode) == 0o600
        chain.key.cache_clear()
        assert chain.key() == first and len(first) == 64
    finally:
        chain.key.cache_clear()


def test_concurrent_appends_keep_one_chain(transactional_db, audit_cmd):
    """Threads with their own connections record at once; the lock keeps ids and MACs in one line."""
    errors = []

    def append(n):
        try:
            for i in range(10):
                with transaction.atomic():
                    record(Actor.system(f"thread {n}"), "test.concurrent", message=str(i))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=append, args=(n,)) for n in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    ids = list(AuditEntry.objects.order_by("id").values_list("id", flat=True))
    assert len(ids) == 60 and ids == list(range(ids[0], ids[0] + 60))
    assert audit_cmd("verify")[0] == 0


def test_verify_from_the_shell_exits_1_naming_the_entry(transactional_db, anchor_file):
    """The command line contract, in a process of its own: exit 0 when whole, 1 and the entry's id when not."""
    import subprocess
    import sys

    from tests.conftest import ROOT, child_environment

    entries = [record(Actor.command_line(), "test.action", message=f"entry {i}") for i in range(3)]
    command = [sys.executable, "manage.py", "audit", "verify"]
    # This test's anchors, not those a beat in another test wrote for its own table into the shared state dir.
    environment = {**child_environment(), "AUDIT_ANCHOR_FILE": str(anchor_file)}
    whole = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120)
    assert whole.returncode == 0 and "OK: 3 entries verified" in whole.stdout, whole.stderr
    raw(f"UPDATE {TABLE} SET after = %s WHERE id = %s", ['{"memory_kib": 1}', entries[1].id])
    broken = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120)
    assert broken.returncode == 1 and f"audit entry {entries[1].id}:" in broken.stderr
