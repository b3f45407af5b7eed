"""`manage.py audit verify | anchor | export | archive`: check, anchor, read out and prune the audit chain
(docs/audit.md)."""

import csv
import hashlib
import json
import os
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from balloonweb.access.actors import Actor
from balloonweb.audit import anchors, chain
from balloonweb.audit.models import AuditEntry
from balloonweb.audit.review import EXPORT_FIELDS, AuditFilter, as_row, csv_values, parse_date

BATCH = 5000


def entries_in_order(queryset=None):
    """Every entry in id order, in batches, without holding a million rows in memory."""
    queryset = (queryset if queryset is not None else AuditEntry.objects.all()).order_by("id")
    return queryset.iterator(chunk_size=BATCH)


def entry_from_row(row: dict) -> AuditEntry:
    """An entry as read back from an archive file, for verifying the file's own chain."""
    values = dict(row)
    values["at"] = parse_date(values["at"])
    return AuditEntry(**values)


class Command(BaseCommand):
    help = "Check (verify), read out (export) or archive the tamper-evident audit log."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True)
        verify = sub.add_parser("verify", help="exit 0 when the chain is whole; else name the first broken entry, exit 1")
        verify.add_argument("--archive", help="verify an archive file written by `audit archive` instead of the table")
        verify.add_argument("--head", help="ID:MAC, a head printed by an earlier verify: check that it is still there")
        sub.add_parser("anchor", help="append the chain's head to AUDIT_ANCHOR_FILE now (beat does it every minute)")
        export = sub.add_parser("export", help="write entries, newest first, with the review page's filters")
        export.add_argument("--format", choices=["csv", "jsonl"], default="jsonl")
        export.add_argument("--output", "-o", help="file (default: standard output)")
        for name in ("actor", "team", "host", "domain", "action", "result", "since", "until", "q"):
            export.add_argument(f"--{name}")
        archive = sub.add_parser("archive", help="move entries older than a date to a file, leaving a signed checkpoint")
        archive.add_argument("--before", required=True, help="YYYY-MM-DD [HH:MM] (UTC): archive entries older than this")
        archive.add_argument("--output", "-o", help="file (default: STATE_DIR/audit-archive-<first>-<last>.jsonl)")

    def handle(self, *args, subcommand, **options):
        getattr(self, subcommand)(**options)

    # -- verify -------------------------------------------------------------------------------------------------

    def verify(self, archive=None, head=None, **options):
        try:
            expected_head = anchors.Anchor.parse(head) if head else None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if archive:
            with open(archive) as lines:
                count, broken = chain.verify(entry_from_row(json.loads(line)) for line in lines if line.strip())
        else:
            count, broken = chain.verify(entries_in_order())
        if broken:
            self.stderr.write(f"BROKEN at {broken} ({count - 1} entries before it verified)")
            sys.exit(1)
        if archive:
            self.stdout.write(f"OK: {count} entries verified")
            return
        checked = [a for a in (anchors.latest(), expected_head) if a is not None]
        for anchor in checked:
            if problem := anchors.problem_with(anchor):
                self.stderr.write(f"BROKEN: {problem} ({count} entries verified)")
                sys.exit(1)
        current = anchors.head()
        where = f" (head: entry {current.entry_id}, MAC {current.mac}; as --head: {current.entry_id}:{current.mac})" if current else ""
        anchored = f"; anchored head {checked[0].entry_id} is there" if checked else ""
        self.stdout.write(f"OK: {count} entries verified{where}{anchored}")

    def anchor(self, **options):
        anchor = anchors.write_anchor()
        if anchor is None:
            self.stdout.write("nothing to anchor: the audit log is empty")
        else:
            self.stdout.write(f"anchored entry {anchor.entry_id} in {anchors.anchor_file()}")

    # -- export -------------------------------------------------------------------------------------------------

    def export(self, format, output=None, **options):
        data = {k: options[k] for k in ("actor", "team", "host", "domain", "action", "result", "since", "until", "q") if options.get(k)}
        form = AuditFilter(data)
        if not form.is_valid():
            raise CommandError("; ".join(f"--{field}: {' '.join(errors)}" for field, errors in form.errors.items()))
        entries = form.apply(AuditEntry.objects.all()).iterator(chunk_size=BATCH)
        out = open(output, "w", newline="") if output else self.stdout
        try:
            write_entries(out, entries, format)
        finally:
            if output:
                out.close()

    # -- archive ------------------------------------------------------------------------------------------------

    def archive(self, before, output=None, **options):
        cutoff = parse_date(before)
        with transaction.atomic():
            chain.lock()
            last = AuditEntry.objects.filter(at__lt=cutoff).order_by("-id").first()
            if last is None:
                self.stdout.write(f"nothing before {cutoff:%Y-%m-%d %H:%M} UTC to archive")
                return
            # Everything up to the last old entry goes (ids are in time order but for a few racing microseconds).
            archived = AuditEntry.objects.filter(id__lte=last.id)
            first_id = archived.order_by("id").values_list("id", flat=True).first()
            count, broken = chain.verify(entries_in_order(archived))
            if broken:
                raise CommandError(f"not archiving a broken chain: {broken}")
            path = Path(output or Path(settings.STATE_DIR) / f"audit-archive-{first_id}-{last.id}.jsonl")
            digest = write_archive(path, entries_in_order(archived))
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL balloonweb.audit_archive = 'on'")
            with connection.cursor() as cursor:
                cursor.execute(f"DELETE FROM {AuditEntry._meta.db_table} WHERE id <= %s", [last.id])
            checkpoint = write_checkpoint(
                Actor.command_line(), last, first_id=first_id, count=count, path=path, digest=digest,
            )
        self.stdout.write(f"archived {count} entries ({first_id}..{last.id}) to {path} (sha256 {digest}); checkpoint is entry {checkpoint.id}")


def write_entries(out, entries, format: str) -> None:
    if format == "csv":
        writer = csv.writer(out)
        writer.writerow(EXPORT_FIELDS)
        for entry in entries:
            writer.writerow(csv_values(entry))
    else:
        for entry in entries:
            out.write(json.dumps(as_row(entry), sort_keys=True) + "\n")


def write_archive(path: Path, entries) -> str:
    """Write the entries (oldest first, with their MACs, so the file verifies on its own); its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(path, "x") as out:  # never overwrite an earlier archive
        for entry in entries:
            line = json.dumps(as_row(entry), sort_keys=True) + "\n"
            digest.update(line.encode())
            out.write(line)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def write_checkpoint(actor: Actor, last: AuditEntry, *, first_id: int, count: int, path: Path, digest: str) -> AuditEntry:
    """The entry that stands for the archived ones, in the place of the last of them: it chains on "" and
    signs the last archived MAC, on which the next entry's MAC already goes on."""
    entry = AuditEntry(
        id=last.id,
        # At the last archived entry's time, in its place: a period filter bounds ids by time (review.in_period),
        # and a checkpoint dated now, among older entries, fell out of every period but the present.
        at=last.at,
        actor_kind=actor.kind,
        actor_label=actor.label,
        actor_user_id=actor.user.pk if actor.user is not None else None,
        action=chain.CHECKPOINT,
        object_type="",
        object_repr=f"entries {first_id}..{last.id}",
        after={"first_id": first_id, "last_id": last.id, "count": count, "last_mac": chain.next_link(last),
               "file": path.name, "sha256": digest},
        result=AuditEntry.Result.SUCCEEDED,
        message=f"{count} entries archived to {path.name} at {timezone.now():%Y-%m-%d %H:%M:%S %Z}",
    )
    entry.mac = chain.mac(entry, "")
    entry.save()
    return entry
