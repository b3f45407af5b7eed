"""One full poll cycle over N hosts x M domains: libvirt bulk stats, the bulk database write, the live-update
publish; beside the bare libvirt reads (hosts.drivers.bare.time_bulk_reads) measured in the same run.

Hosts are connections to a few private libvirtd daemons serving the test driver; each connection opens its
own node file with M domains, so every host has domains of its own.

    .venv/bin/python bench/poll.py --hosts 200 --domains 50 [--daemons 4] [--cycles 5] [--interval S] [--database-url URL]

Cycles start POLL_INTERVAL seconds apart (or --interval), as the beat schedules them: what a poll writes depends
on the time since the previous one (a domain's chart sample is due once per SAMPLE_EVERY_S). The bare reads run
in the gap.

Prints JSON. Target: a cycle over 200 x 50 in under 1 s, at most 2x the bare libvirt time.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def node_xml(domains: int) -> str:
    body = "".join(
        f"<domain type='test'><name>d{i}</name><uuid>{uuid.uuid4()}</uuid><memory unit='MiB'>2048</memory>"
        f"<currentMemory unit='MiB'>{512 + 16 * i}</currentMemory><vcpu>1</vcpu><os><type>hvm</type></os></domain>"
        for i in range(domains)
    )
    # The test driver reads the node's memory in KiB and ignores a unit: 256 GiB.
    return f"<node><memory>{256 * 1024**2}</memory>{body}</node>"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--domains", type=int, default=50)
    parser.add_argument("--daemons", type=int, default=4)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--interval", type=float, default=None, help="seconds between cycle starts (default POLL_INTERVAL)")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="balloonweb-bench-poll-"))
    os.environ["BALLOONWEB_STATE_DIR"] = str(work)
    os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{work / 'bench.sqlite3'}"
    # DEBUG off, as in production: with it on, Django keeps and formats every statement it runs.
    os.environ["DEBUG"] = "0"
    os.environ.setdefault("SECRET_KEY", "bench-only")
    os.environ.setdefault("CHANNELS_PREFIX", "balloonweb-bench")
    os.environ["DJANGO_SETTINGS_MODULE"] = "balloonweb.settings"
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from domains.models import Domain, MemorySample
    from domains.poller import POLL_THREADS, poll_hosts
    from hosts.drivers import bare
    from hosts.models import Host
    from hosts.simulation import fleet

    call_command("migrate", verbosity=0)
    if args.database_url:
        Domain.objects.all().delete()
        Host.objects.all().delete()
    daemons = [fleet.simhost(f"benchd{i}") for i in range(args.daemons)]
    try:
        for daemon in daemons:
            fleet.start_daemon(daemon)
        hosts = []
        for i in range(args.hosts):
            node = work / f"node-{i}.xml"
            node.write_text(node_xml(args.domains))
            socket = daemons[i % len(daemons)].socket
            hosts.append(Host(name=f"bench{i}", uri=f"test+unix://{node}?socket={socket}", capacity_kib=256 * 1024**2))
        Host.objects.bulk_create(hosts)
        hosts = list(Host.objects.all())
        interval = settings.POLL_INTERVAL if args.interval is None else args.interval
        warm = poll_hosts(hosts)  # first sight: rows created, each domain's config read once
        samples_before = MemorySample.objects.count()
        time.sleep(interval)
        cycles, raw = [], []
        for _ in range(args.cycles):
            started = time.monotonic()
            hosts = list(Host.objects.all())
            report = poll_hosts(hosts)
            cycles.append(report)
            raw.append(bare.time_bulk_reads([h.uri for h in hosts], POLL_THREADS))
            time.sleep(max(0.0, started + interval - time.monotonic()))
        totals = [c.libvirt_s + c.database_s + c.publish_s for c in cycles]
        result = {
            "hosts": args.hosts,
            "domains_per_host": args.domains,
            "domains": Domain.objects.count(),
            "daemons": args.daemons,
            "database": django.db.connection.vendor,
            "cycles": args.cycles,
            "interval_s": interval,
            "first_cycle_s": round(warm.libvirt_s + warm.database_s + warm.publish_s, 4),
            "cycle_s_median": round(statistics.median(totals), 4),
            "cycle_s_max": round(max(totals), 4),
            "libvirt_s_median": round(statistics.median(c.libvirt_s for c in cycles), 4),
            "database_s_median": round(statistics.median(c.database_s for c in cycles), 4),
            "publish_s_median": round(statistics.median(c.publish_s for c in cycles), 4),
            "bare_libvirt_s_median": round(statistics.median(raw), 4),
            "samples_per_cycle": (MemorySample.objects.count() - samples_before) // args.cycles,
        }
        result["ratio_to_bare"] = round(result["cycle_s_median"] / result["bare_libvirt_s_median"], 2)
        result["target_met"] = result["cycle_s_median"] < 1.0 and result["ratio_to_bare"] <= 2.0
        print(json.dumps(result, indent=2))
    finally:
        for daemon in daemons:
            fleet.remove(daemon)


if __name__ == "__main__":
    main()
