"""Live-update latency: N WebSocket clients on one daphne process watching the fleet page, while real polls of
simulated hosts publish. Prints JSON: the delay from a poll's publish to each client receiving it (p50, p95,
p99, max) and the number of messages lost.

    .venv/bin/python bench/live.py [--clients 500] [--polls 20] [--interval 1.0] [--hosts 2] [--domains 10]

Everything runs on this machine in a private state directory (its own SQLite database, simulated hosts and
daphne) and under a private channel prefix on the Redis of REDIS_URL (default db 0): nothing is shared with a
running BalloonWeb. The bench tags each poll's fleet messages with the poll's number on their way to
publish_many(), so that each client can tell which publish a message belongs to.
"""

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


BATCH = 25  # sockets opened at once


def configure(state_dir: Path) -> dict:
    environment = {
        "DJANGO_SETTINGS_MODULE": "balloonweb.settings",
        "BALLOONWEB_STATE_DIR": str(state_dir),
        "DATABASE_URL": f"sqlite:///{state_dir / 'bench.sqlite3'}",
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "CHANNELS_PREFIX": f"bench-live-{os.getpid()}",
        "CACHE_PREFIX": f"bench-live-{os.getpid()}",
        "SECRET_KEY": secrets.token_hex(32),
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(environment)
    import django

    django.setup()
    return {**os.environ, **environment}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def prepare_fleet(hosts: int, domains: int):
    """Simulated hosts with running domains, registered and polled once; a superuser with a session."""
    from django.contrib.auth import get_user_model
    from django.conf import settings
    from django.test import Client
    from django.core.management import call_command

    from hosts.drivers import DomainConfig, driver_for
    from hosts.simulation import setup
    from domains.inventory import record_domain

    call_command("migrate", verbosity=0)
    made = []
    for i in range(hosts):
        host = setup.start(f"bench{i}", memory_mib=domains * 1024 + 4096)
        driver = driver_for(host.uri)
        for j in range(domains):
            record_domain(host, driver.define_and_start(DomainConfig(f"vm{i}-{j}", 512 * 1024, 1024 * 1024, description="demand: steady 300M")))
        made.append(host)
    user = get_user_model().objects.create_superuser("bench", "bench@example.invalid", secrets.token_hex(16))
    browser = Client()
    browser.force_login(user)  # a real session, made by whatever authentication backend is configured
    return made, browser.cookies[settings.SESSION_COOKIE_NAME].value


def start_daphne(environment: dict, port: int, log: Path) -> subprocess.Popen:
    out = open(log, "w")
    process = subprocess.Popen(
        [sys.executable, *(["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]] if os.environ.get("BENCH_PROFILE") else []),
         "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "balloonweb.asgi:application"],
        cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daphne did not start: see {log}") from None
            time.sleep(0.1)


class Publishes:
    """Wraps the poller's publish_many: tags each fleet message with the poll number and notes when it left."""

    def __init__(self):
        import domains.poller as poller

        self.poller = poller
        self.original = poller.publish_many
        self.sent_at: dict[int, float] = {}
        self.fleet_messages: dict[int, int] = {}
        self.poll = 0
        poller.publish_many = self.publish_many

    def publish_many(self, messages):
        tagged = [(t, k, {**p, "bench_poll": self.poll} if t == "fleet" else p) for t, k, p in messages]
        self.fleet_messages[self.poll] = sum(t == "fleet" for t, _, _ in messages)
        self.sent_at[self.poll] = time.time()
        self.original(tagged)


async def run_clients(url: str, cookie: str, count: int, received: list, ready: asyncio.Event, stop: asyncio.Event) -> dict:
    """`count` sockets opened in batches (as pages load, not all in one instant), each noting the hints it gets."""
    import websockets

    state = {"settled": 0, "connected": 0, "failures": 0, "dropped": 0}
    errors: set[str] = set()
    origin = url.split("/ws/")[0].replace("ws://", "http://")

    sockets = []

    async def client(index: int) -> None:
        opened = False
        try:
            async with websockets.connect(url, origin=origin, additional_headers={"Cookie": f"sessionid={cookie}"},
                                          open_timeout=30, max_queue=None) as ws:
                opened = True
                sockets.append(ws)
                state["connected"] += 1
                state["settled"] += 1
                async for raw in ws:  # until the bench closes it
                    at = time.time()
                    message = json.loads(raw)
                    if "bench_poll" in message:
                        received.append((index, message["bench_poll"], at))
        except Exception as exc:  # noqa: BLE001 - counted, reported in the JSON
            errors.add(f"{exc.__class__.__name__}: {exc}")
            if opened and not stop.is_set():
                state["dropped"] += 1  # closed under us after it opened: its hints are lost
            elif not opened:
                state["failures"] += 1
                state["settled"] += 1

    tasks = []
    for start in range(0, count, BATCH):
        tasks += [asyncio.create_task(client(i)) for i in range(start, min(count, start + BATCH))]
        deadline = time.monotonic() + 60
        while state["settled"] < len(tasks) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    ready.set()
    await stop.wait()
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    await asyncio.gather(*tasks)
    return {**state, "errors": sorted(errors)[:5]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--polls", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--domains", type=int, default=10, help="per host")
    args = parser.parse_args()

    # A SIGTERM (e.g. from `timeout`) unwinds through `finally`, so daphne and the simulated hosts are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    state_dir = Path(tempfile.mkdtemp(prefix="bw-bench-live-"))
    environment = configure(state_dir)
    from hosts.simulation import setup

    daphne = None
    try:
        hosts, session_key = prepare_fleet(args.hosts, args.domains)
        port = free_port()
        daphne = start_daphne(environment, port, state_dir / "daphne.log")
        publishes = Publishes()
        received: list[tuple[int, int, float]] = []
        poll_times: list[float] = []

        async def scenario() -> dict:
            ready, stop = asyncio.Event(), asyncio.Event()
            started = time.monotonic()
            clients = asyncio.create_task(run_clients(f"ws://127.0.0.1:{port}/ws/fleet/", session_key, args.clients, received, ready, stop))
            await ready.wait()
            connect_s = time.monotonic() - started
            await asyncio.sleep(1.0)  # every socket has joined its groups before the first publish

            def polls() -> None:
                from domains.poller import poll_hosts

                for number in range(1, args.polls + 1):
                    publishes.poll = number
                    began = time.perf_counter()
                    poll_hosts(hosts)
                    poll_times.append(time.perf_counter() - began)
                    time.sleep(args.interval)

            worker = threading.Thread(target=polls)
            worker.start()
            while worker.is_alive():
                await asyncio.sleep(0.1)
            await asyncio.sleep(2.0)  # stragglers
            stop.set()
            outcome = await clients
            return {**outcome, "connect_s": round(connect_s, 2)}

        outcome = asyncio.run(scenario())
        if outcome["failures"] or outcome["dropped"]:
            print((state_dir / "daphne.log").read_text()[-3000:], file=sys.stderr)
        delays = [(at - publishes.sent_at[poll]) * 1000 for _, poll, at in received]
        expected = sum(publishes.fleet_messages.values()) * outcome["connected"]
        print(json.dumps({
            "clients": args.clients,
            "connected": outcome["connected"],
            "connect_failures": outcome["failures"],
            "dropped_after_open": outcome["dropped"],
            "connect_errors": outcome["errors"],
            "connect_s": outcome["connect_s"],
            "hosts": args.hosts,
            "domains": args.hosts * args.domains,
            "polls": args.polls,
            "fleet_messages_published": sum(publishes.fleet_messages.values()),
            "deliveries_expected": expected,
            "received": len(received),
            "lost": expected - len(received),
            "delay_ms": {
                "p50": round(percentile(delays, 50), 1) if delays else None,
                "p95": round(percentile(delays, 95), 1) if delays else None,
                "p99": round(percentile(delays, 99), 1) if delays else None,
                "max": round(max(delays), 1) if delays else None,
                "mean": round(statistics.fmean(delays), 1) if delays else None,
            },
            "poll_s_mean": round(statistics.fmean(poll_times), 3) if poll_times else None,
            "target": {"p99_ms_below": 500, "lost": 0},
        }, indent=2))
    finally:
        if daphne is not None:
            daphne.terminate()
            try:
                daphne.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daphne.kill()
        for i in range(args.hosts):
            setup.stop(f"bench{i}")
        shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
