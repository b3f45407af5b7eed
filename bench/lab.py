"""Benchmark on the QEMU lab's real guests: prints JSON.

- resize: 20 resizes of labvm1 in 128 MiB steps (384, 256, 384, 512, 384, ...). Through BalloonWeb: from
  `request_resize` (permission, bounds, capacity, audit, Job row) through the Celery worker until the balloon
  is within 1 % of the target, (a) in QEMU itself (QMP `query-balloon`, polled every 10 ms) and (b) in
  libvirt, whose figure follows QEMU's BALLOON_CHANGE events (at most one a second). Beside it, in the same
  run, the same 20 steps as bare `setMemoryFlags(AFFECT_LIVE)` calls: the call itself, and until (a) and (b).
- migration: labvm1 live-migrated lab1 -> lab2 as a BalloonWeb job (from `request_migrate` to the job's
  success), and back lab2 -> lab1 as a bare `migrate3` with the same flags and parameters; --migrations times.

Uses the running lab (`manage.py lab up`) or starts one with a steady 32 MiB workload and stops it after.
Runs its own Celery worker on its own database (STATE_DIR/lab/bench.sqlite3) and Redis database (13) unless
DATABASE_URL / REDIS_URL say otherwise.
Usage: .venv/bin/python bench/lab.py [--resizes 20] [--migrations 3]
"""

import argparse
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "balloonweb.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")
_state_dir = Path(os.environ.get("BALLOONWEB_STATE_DIR", ROOT / "var"))
os.environ.setdefault("DATABASE_URL", f"sqlite:///{_state_dir / 'lab' / 'bench.sqlite3'}")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from balloonweb.access.actors import Actor  # noqa: E402
from domains import services  # noqa: E402
from domains.models import Domain, Job  # noqa: E402
from hosts.drivers import bare, driver_for  # noqa: E402
from hosts.drivers.events import subscribe  # noqa: E402
from hosts.lab import setup  # noqa: E402
from hosts.lab.guest import MAXMEM_MIB  # noqa: E402
from hosts.lab.migration import migration_options  # noqa: E402

MIB = 1024
STEP_MIB = 128
STEPS_MIB = (384, 256, 384, 512)  # a triangle between 256 and 512 MiB, in 128 MiB steps, repeated
WITHIN = 0.01
BALLOON_TIMEOUT_S = 30.0
JOB_TIMEOUT_S = 120.0
QUIET_DEMAND = "3600:32"
POLL_QMP_S = 0.01


def percentiles(values: list[float]) -> dict:
    if not values:
        return {}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"n": len(values), "p50": round(statistics.median(ordered), 4), "p95": round(p95, 4), "max": round(ordered[-1], 4)}


class BalloonWatch:
    """When a guest's balloon reaches a target: in QEMU itself (QMP, polled), and as libvirt learns of it
    (BALLOON_CHANGE events, which QEMU sends at most once a second)."""

    def __init__(self, uri: str, uuid: str):
        self.uri, self.uuid = uri, uuid
        self.events: queue.Queue = queue.Queue()
        self.subscription = subscribe(uri, self._seen)

    def _seen(self, event) -> None:
        if event.kind == "balloon" and event.uuid == self.uuid:
            self.events.put((time.perf_counter(), event.actual_kib))

    def drain(self) -> None:
        while not self.events.empty():
            self.events.get_nowait()

    def near(self, kib: int, target_kib: int) -> bool:
        return abs(kib - target_kib) <= WITHIN * target_kib

    def in_guest(self, target_kib: int, done=lambda: True) -> float | None:
        """perf_counter time at which QEMU's balloon came within 1 % of the target (and `done()` held)."""
        deadline = time.monotonic() + BALLOON_TIMEOUT_S
        while time.monotonic() < deadline:
            if done() and self.near(bare.qemu_balloon_kib(self.uri, self.uuid), target_kib):
                return time.perf_counter()
            time.sleep(POLL_QMP_S)
        return None

    def in_libvirt(self, target_kib: int, already_kib: int) -> float | None:
        """perf_counter time of the balloon event that brought libvirt's figure within 1 % of the target."""
        if self.near(already_kib, target_kib):
            return time.perf_counter()
        deadline = time.monotonic() + BALLOON_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                at, actual = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if self.near(actual, target_kib):
                return at
        return None

    def close(self) -> None:
        self.subscription.close()


def start_worker(log: Path) -> subprocess.Popen:
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "balloonweb", "worker", "-Q", "jobs", "-c", "1", "-n", "labbench@%h",
         "--without-gossip", "--without-mingle", "-l", "info", "--logfile", str(log)],
        cwd=ROOT, env=os.environ.copy(), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while "ready." not in (log.read_text(errors="replace") if log.exists() else ""):
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the Celery worker did not start: see {log}")
        time.sleep(0.1)
    return worker


def wait_job(job: Job) -> Job:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.is_finished:
            return job
        time.sleep(0.01)
    raise RuntimeError(f"job {job.pk} still {job.state} after {JOB_TIMEOUT_S} s")


def current_kib(uri: str, uuid: str) -> int:
    return driver_for(uri).domain(uuid).memory_kib


def bench_resizes(actor: Actor, domain: Domain, count: int) -> dict:
    uri, uuid = domain.host.uri, str(domain.uuid)
    watch = BalloonWatch(uri, uuid)
    figures = {key: [] for key in ("balloonweb_to_guest", "balloonweb_to_libvirt", "bare_call", "bare_to_guest", "bare_to_libvirt")}
    misses = []

    def step(kind: str, target: int) -> None:
        already = current_kib(uri, uuid)
        watch.drain()
        started = time.perf_counter()
        if kind == "balloonweb":
            job = services.request_resize(actor, domain, f"{target}K")
            # The guest may get there before the worker has written "succeeded": count whichever is later.
            in_guest = watch.in_guest(target, done=lambda: Job.objects.filter(pk=job.pk, state=Job.State.SUCCEEDED).exists())
        else:
            figures["bare_call"].append(bare.time_set_memory_live(uri, uuid, target))
            in_guest = watch.in_guest(target)
        in_libvirt = watch.in_libvirt(target, already)
        if in_guest is None or in_libvirt is None:
            misses.append({"path": kind, "target_mib": target // MIB})
            return
        figures[f"{kind}_to_guest"].append(in_guest - started)
        figures[f"{kind}_to_libvirt"].append(in_libvirt - started)

    try:
        for i in range(count):
            step("balloonweb", STEPS_MIB[i % len(STEPS_MIB)] * MIB)
        for i in range(count):  # the same steps again as bare calls, in the same run
            step("bare", STEPS_MIB[i % len(STEPS_MIB)] * MIB)
    finally:
        watch.close()
        driver_for(uri).set_memory(uuid, MAXMEM_MIB * MIB, live=True, config=False)
    return {
        "resizes": count,
        "step_mib": STEP_MIB,
        "within": WITHIN,
        "balloonweb_request_to_guest_balloon_s": percentiles(figures["balloonweb_to_guest"]),
        "balloonweb_request_to_libvirt_event_s": percentiles(figures["balloonweb_to_libvirt"]),
        "bare_setMemoryFlags_call_s": percentiles(figures["bare_call"]),
        "bare_setMemoryFlags_to_guest_balloon_s": percentiles(figures["bare_to_guest"]),
        "bare_setMemoryFlags_to_libvirt_event_s": percentiles(figures["bare_to_libvirt"]),
        "not_within_1_percent_after_30_s": misses,
    }


def bench_migrations(actor: Actor, domain: Domain, lab1, lab2, count: int) -> dict:
    uuid = str(domain.uuid)
    request_to_done, job_run, bare_migrate = [], [], []
    for _ in range(count):
        domain.refresh_from_db()
        started = time.perf_counter()
        job = wait_job(services.request_migrate(actor, domain, lab2))
        if job.state != Job.State.SUCCEEDED:
            raise RuntimeError(f"migration job {job.pk} {job.state}: {job.error}")
        request_to_done.append(time.perf_counter() - started)
        job_run.append(job.duration_s)
        options = migration_options(lab2.uri, lab1.uri, uuid)
        bare_migrate.append(bare.time_migrate(lab2.uri, lab1.uri, uuid, **options))
        Domain.objects.filter(pk=domain.pk).update(host=lab1)  # the bare move bypassed BalloonWeb
    return {
        "migrations": count,
        "guest": {"maxmem_mib": MAXMEM_MIB, "memory_mib": current_kib(lab1.uri, uuid) // MIB},
        "balloonweb_request_to_done_s": percentiles(request_to_done),
        "balloonweb_job_running_s": percentiles(job_run),
        "bare_migrate3_s": percentiles(bare_migrate),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resizes", type=int, default=20)
    parser.add_argument("--migrations", type=int, default=3)
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    started_lab = not all(host.running for host in setup.hosts())
    if started_lab:
        setup.start(demand=QUIET_DEMAND, say=lambda _line: None)
    worker = None
    try:
        hosts = setup.register_hosts(setup.hosts())
        setup.refresh_inventory(hosts)
        lab1, lab2 = hosts
        # Every run starts from labvm1 on lab1 at its full size.
        guest = next(g for g in setup.guests() if g.name == "labvm1")
        where = setup.where(guest.uuid)
        if where is not None and where.name != "lab1":
            bare.time_migrate(where.uri, lab1.uri, guest.uuid, **migration_options(where.uri, lab1.uri, guest.uuid))
        driver_for(lab1.uri).set_memory(guest.uuid, MAXMEM_MIB * MIB, live=True, config=False)
        setup.refresh_inventory(hosts)
        domain = Domain.objects.select_related("host").get(uuid=guest.uuid)
        worker = start_worker(Path(setup.lab_dir()) / "bench-worker.log")
        actor = Actor.command_line()
        result = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "accel": "tcg"},
            "lab_started_by_bench": started_lab,
            "resize": bench_resizes(actor, domain, args.resizes),
            "migration": bench_migrations(actor, domain, lab1, lab2, args.migrations),
        }
        print(json.dumps(result, indent=2))
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        if started_lab:
            setup.stop(say=lambda _line: None)


if __name__ == "__main__":
    main()
