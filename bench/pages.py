"""Server time and size of the console's pages on a large fleet: the fleet page (60 host cards a page), the domains
page (100 rows a page, filtered or not) and a host page, for a superuser (who sees every host) and a team admin (who
sees half), in process (django.test.Client: the whole middleware stack, access rules and templates, without
server or network). The live regions refetch the same URLs, so these are also the cost of one live update.

    .venv/bin/python bench/pages.py [--hosts 1000] [--domains-per-host 20] [--requests 30]

Prints JSON: per page, p50 and p95 in ms and the page's size in KiB.
"""

import argparse
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api import timed  # noqa: E402

PAGES = {
    "fleet": "/",
    "fleet_by_most_free_page_2": "/?order=free&page=2",
    "domains": "/domains/",
    "domains_by_name_part": "/domains/?name=d01&sort=memory&dir=desc",
    "host": "/hosts/{host}/",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--domains-per-host", type=int, default=20)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="balloonweb-bench-pages-"))
    os.environ["BALLOONWEB_STATE_DIR"] = str(work)
    os.environ["DATABASE_URL"] = f"sqlite:///{work / 'bench.sqlite3'}"
    os.environ["DEBUG"] = "0"  # production-like: DEBUG keeps every query in memory
    os.environ.setdefault("SECRET_KEY", "bench-" + uuid.uuid4().hex)
    os.environ["ALLOWED_HOSTS"] = "testserver"
    os.environ["DJANGO_SETTINGS_MODULE"] = "balloonweb.settings"
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from balloonweb.access.models import Membership, Team
    from domains.models import Domain
    from hosts.models import Host

    call_command("migrate", verbosity=0)
    teams = [Team.objects.create(name="bench"), Team.objects.create(name="others")]
    hosts = Host.objects.bulk_create([
        Host(name=f"hv{i:04}", uri=f"test:///hv{i}", team=teams[i % 2], status="online",
             total_kib=64 * 2**20, capacity_kib=64 * 2**20, reserved_kib=2**20, cpus=16)
        for i in range(args.hosts)
    ])
    mib = 1024
    Domain.objects.bulk_create([
        Domain(host=host, name=f"{host.name}-d{j:03}", uuid=uuid.uuid4(), hv_id=j + 1, state="running", vcpus=1,
               memory_kib=(1024 + 64 * (j % 8)) * mib, maxmem_kib=4096 * mib, config_memory_kib=1024 * mib,
               config_maxmem_kib=4096 * mib, floor_kib=128 * mib, actual_kib=1024 * mib, unused_kib=300 * mib,
               available_kib=1000 * mib, usable_kib=600 * mib)
        for host in hosts for j in range(args.domains_per_host)
    ], batch_size=5000)
    users = get_user_model().objects
    people = {"superuser": users.create_superuser("bench-root"), "team_admin": users.create_user("bench-admin")}
    Membership.objects.create(user=people["team_admin"], team=teams[0], role="admin")

    results = {}
    for who, user in people.items():
        client = Client()
        client.force_login(user)
        results[who] = {}
        for name, url in PAGES.items():
            url = url.format(host=hosts[0].pk)

            def send(_, url=url):
                response = client.get(url)
                assert response.status_code == 200, (url, response.status_code)
                return response

            figures = timed(send, args.requests)
            results[who][name] = {
                "url": url, "p50_ms": figures["p50_ms"], "p95_ms": figures["p95_ms"],
                "kib": round(len(send(0).content) / 1024, 1),
            }
    print(json.dumps({
        "setup": {"hosts": args.hosts, "domains": args.hosts * args.domains_per_host, "requests_per_page": args.requests,
                  "database": "sqlite", "team_admin_sees_hosts": args.hosts // 2},
        "pages": results,
    }, indent=2))


if __name__ == "__main__":
    main()
