"""The audit review page's server time with N entries (default 1,000,000): the first page, filtered pages and a
deep keyset page, as a superuser and as a team admin; measured in process with Django's test client, so the
time is the whole server side (middleware, session, queries, template), without the network.

    .venv/bin/python bench/audit.py --database-url postgres://postgres@127.0.0.1:5432/bw_bench_audit [--entries 1000000]

The database is filled once (entries chained with real MACs, written in batches) and kept for later runs with
the same N. Prints JSON. Target: every page under 100 ms.
"""

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TEAMS, HOSTS, DOMAINS, ACTORS = 20, 200, 20000, 100
ACTIONS = ["domain.resize", "job.resize", "domain.migrate", "job.migrate", "domain.maxmem", "domain.floor",
           "auth.login", "auth.logout", "auth.login_failed", "membership.role", "host.update"]
BATCH = 20000


def fill(n: int) -> None:
    """n chained entries over the last 60 days: teams, hosts, domains and actors spread as on a busy fleet."""
    from django.db import connection
    from django.utils import timezone

    from balloonweb.audit import chain
    from balloonweb.audit.models import AuditEntry

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {AuditEntry._meta.db_table}")  # a fresh fill (TRUNCATE is not trapped)
    rng = random.Random(4)
    start = timezone.now() - timedelta(days=60)
    step = timedelta(days=60) / n
    previous = ""
    rows = []
    for i in range(1, n + 1):
        action = rng.choice(ACTIONS)
        domain = rng.randrange(DOMAINS)
        host = domain % HOSTS
        team = host % TEAMS
        result = rng.choices(["accepted", "succeeded", "failed", "refused"], [40, 45, 5, 10])[0]
        entry = AuditEntry(
            id=i, at=start + step * i, actor_kind="user", actor_label=f"user{rng.randrange(ACTORS)}", action=action,
            object_type="domain", object_id=str(domain + 1), object_repr=f"vm-{domain:05d}", team_id=team + 1,
            host_id=host + 1, domain_id=domain + 1, before={"memory_kib": 1048576}, after={"memory_kib": 524288 + 1024 * (i % 512)},
            result=result, message="" if result != "refused" else "above the team's limit of 2048 MiB for one domain",
            request_id=f"{i:032x}", client_ip="192.0.2.10",
        )
        entry.mac = chain.mac(entry, previous)
        previous = entry.mac
        rows.append(entry)
        if len(rows) == BATCH:
            AuditEntry.objects.bulk_create(rows)
            rows = []
    if rows:
        AuditEntry.objects.bulk_create(rows)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"ANALYZE {AuditEntry._meta.db_table}")


def timed(client, url: str, repeat: int) -> dict:
    client.get(url)  # warm: connection, templates, caches
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    rows = response.content.decode().count('id="entry-')
    return {"url": url, "rows": rows, "median_ms": round(statistics.median(samples), 1),
            "p95_ms": round(sorted(samples)[int(0.95 * (len(samples) - 1))], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary folder")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    work = Path(tempfile.gettempdir()) / "balloonweb-bench-audit"
    work.mkdir(exist_ok=True)
    os.environ["BALLOONWEB_STATE_DIR"] = str(work)
    os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{work / 'bench.sqlite3'}"
    os.environ.setdefault("SECRET_KEY", "bench-only-" + "x" * 40)
    os.environ["DEBUG"] = "0"
    os.environ["ALLOWED_HOSTS"] = "testserver"
    os.environ.setdefault("CHANNELS_PREFIX", "balloonweb-bench")
    os.environ["DJANGO_SETTINGS_MODULE"] = "balloonweb.settings"

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from balloonweb.access.models import Membership, Team
    from balloonweb.audit.models import AuditEntry

    call_command("migrate", verbosity=0)
    filled = 0.0
    if AuditEntry.objects.count() < args.entries:  # (each run adds its own sign-ins)
        began = time.perf_counter()
        fill(args.entries)
        filled = round(time.perf_counter() - began, 1)

    users = get_user_model().objects
    root = users.filter(username="bench-root").first() or users.create_superuser("bench-root", password="x")
    admin = users.filter(username="bench-admin").first() or users.create_user("bench-admin", password="x")
    teams = [Team.objects.get_or_create(name=f"bench-team-{i}")[0] for i in (1, 2)]
    for team in teams:
        Membership.objects.get_or_create(user=admin, team=team, defaults={"role": "admin"})
    team_id = teams[0].pk  # entries' team ids are 1..TEAMS; the admin's teams are two of them

    deep = AuditEntry.objects.order_by("id").values_list("id", flat=True)[args.entries // 2]
    pages = {
        "first page": "/audit/",
        "team + action": f"/audit/?team={team_id}&action=domain.resize",
        "domain": "/audit/?domain=1234",
        "actor + result": "/audit/?actor=user7&result=refused",
        "time range (one day, a month ago)": "/audit/?since=" + (django.utils.timezone.now() - timedelta(days=30)).strftime("%Y-%m-%d") + "&until=" + (django.utils.timezone.now() - timedelta(days=30)).strftime("%Y-%m-%d"),
        "free text": "/audit/?q=vm-01234",
        "deep keyset page": f"/audit/?before={deep}",
    }
    results = {"entries": args.entries, "database": django.db.connection.vendor, "fill_s": filled, "target_ms": 100, "superuser": {}, "team_admin": {}}
    for who, user in (("superuser", root), ("team_admin", admin)):
        client = Client()
        client.force_login(user)
        for name, url in pages.items():
            results[who][name] = timed(client, url, args.repeat)
    worst = max(r["p95_ms"] for who in ("superuser", "team_admin") for r in results[who].values())
    results["worst_p95_ms"] = worst
    results["within_target"] = worst < 100
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
