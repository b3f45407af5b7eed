"""Server time of the API's busiest answers: `GET /api/domains/` (a page of 100 out of 20,000 domains) and a
resize up to its 202, beside a trivial DRF view with the same authentication, permissions and renderer,
measured in the same run, twice: over HTTP through daphne (the production server; one client, keep-alive), and
in process (django.test.Client: the whole middleware stack, token lookup, access rules and serialisation, without
server or network), which shows the server time alone.

    .venv/bin/python bench/api.py [--hosts 200] [--domains-per-host 100] [--requests 300] [--database-url URL]

The caller is a team admin (not a superuser), so the list is restricted by team as in real use. Resizes enqueue
their jobs in a Redis database of their own (REDIS_URL, default db 14), which no worker consumes; the bench
deletes that queue when it ends. Prints JSON. Target: the domain list's p95 within 3x of the trivial view's.
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def timed(send, count: int) -> dict:
    """Requests per second (one client, one after another) and latency percentiles, after a warm-up."""
    for i in range(min(20, count)):
        send(i)
    latencies = []
    started = time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        send(i)
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": count,
        "rps": round(count / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))] * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--domains-per-host", type=int, default=100)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="balloonweb-bench-api-"))
    os.environ["BALLOONWEB_STATE_DIR"] = str(work)
    os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{work / 'bench.sqlite3'}"
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/14")
    os.environ.setdefault("CHANNELS_PREFIX", "balloonweb-bench-api")
    # Production-like: no DEBUG (which would keep every query in memory).
    os.environ["DEBUG"] = "0"
    os.environ.setdefault("SECRET_KEY", "bench-" + uuid.uuid4().hex)
    os.environ["ALLOWED_HOSTS"] = "testserver"
    os.environ["DJANGO_SETTINGS_MODULE"] = "balloonweb.settings"
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import override_settings
    from balloonweb.access.actors import Actor
    from balloonweb.access.models import Membership, Team
    from balloonweb.api import tokens
    from domains.models import Domain, Job
    from hosts.models import Host

    call_command("migrate", verbosity=0)
    team = Team.objects.create(name="bench")
    other = Team.objects.create(name="others")
    hosts = Host.objects.bulk_create([
        Host(name=f"hv{i:03}", uri=f"test:///hv{i}", team=team if i % 2 == 0 else other, status="online",
             total_kib=2**30, capacity_kib=2**30, reserved_kib=2**20)
        for i in range(args.hosts)
    ])
    mib = 1024
    Domain.objects.bulk_create([
        Domain(host=host, name=f"{host.name}-d{j:03}", uuid=uuid.uuid4(), state="running", vcpus=1,
               memory_kib=1024 * mib, maxmem_kib=4096 * mib, config_memory_kib=1024 * mib, config_maxmem_kib=4096 * mib,
               floor_kib=128 * mib, actual_kib=1024 * mib, unused_kib=300 * mib, available_kib=1000 * mib, usable_kib=600 * mib)
        for host in hosts for j in range(args.domains_per_host)
    ], batch_size=5000)
    user = get_user_model().objects.create_user("bench-admin")
    Membership.objects.create(user=user, team=team, role="admin")
    _, token = tokens.create_token(Actor.system("bench"), user, "bench", write=True)

    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    mine = list(Domain.objects.filter(host__team=team).values_list("pk", flat=True))

    def get(url):
        def send(_):
            response = client.get(url)
            assert response.status_code == 200, response.content[:300]
            return response
        return send

    def resize(i):
        # Different domains, so that no host piles up pending jobs; sizes alternate so each is a change.
        response = client.post(f"/api/domains/{mine[i % len(mine)]}/resize/", {"size": "512" if i % 2 else "768"},
                               content_type="application/json")
        assert response.status_code == 202, response.content[:300]

    with override_settings(ROOT_URLCONF="bench.api_urls"):
        page = get("/api/domains/")(0).json()
        assert len(page["results"]) == 100 and page["next"]
        in_process = {
            "trivial_view": timed(get("/bench/trivial/"), args.requests),
            "domain_list_page_of_100": timed(get("/api/domains/"), args.requests),
            "resize_to_202": timed(resize, args.requests),
        }
    over_http = measure_over_http(token, mine, args.requests)

    import redis

    redis.Redis.from_url(settings.REDIS_URL).delete("jobs")
    print(json.dumps({
        "database_engine": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
        "domains": Domain.objects.count(),
        "visible_to_caller": len(mine),
        "over_http_daphne": over_http,
        "in_process": in_process,
        "jobs_created": Job.objects.count(),
        "domain_list_p95_over_trivial_p95": {
            "over_http_daphne": ratio(over_http), "in_process": ratio(in_process),
        },
        "target": "domain list p95 within 3x of the trivial view's",
    }, indent=2))


def ratio(figures: dict) -> float:
    return round(figures["domain_list_page_of_100"]["p95_ms"] / figures["trivial_view"]["p95_ms"], 2)


def measure_over_http(token: str, domain_ids: list[int], count: int) -> dict:
    """The same three requests through daphne on a free port, on the same database."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.api_settings", "ALLOWED_HOSTS": "127.0.0.1"}
    server = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "balloonweb.asgi:application"],
                              cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        deadline = time.monotonic() + 60
        while True:
            try:
                connection.request("GET", "/bench/trivial/", headers=headers)
                connection.getresponse().read()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("daphne did not start") from None
                connection.close()
                time.sleep(0.2)

        def call(method: str, url: str, body: str | None, expect: int) -> None:
            connection.request(method, url, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            assert response.status == expect, data[:300]

        return {
            "trivial_view": timed(lambda i: call("GET", "/bench/trivial/", None, 200), count),
            "domain_list_page_of_100": timed(lambda i: call("GET", "/api/domains/", None, 200), count),
            "resize_to_202": timed(lambda i: call("POST", f"/api/domains/{domain_ids[-1 - i % len(domain_ids)]}/resize/",
                                                  json.dumps({"size": "640" if i % 2 else "896"}), 202), count),
        }
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
