"""`xm` as in Xen, on BalloonWeb: list, mem-set, mem-max, create, migrate, and maintenance (emptying a host,
as XenServer's `xe host-evacuate`). Changes run as jobs. Also the fleet's hosts: host-list, host-add, host-set,
host-remove (domains/host_registry.py)."""

import argparse
import getpass
import math
import os
import socket
import sys
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import models

from balloonweb.access import rules
from balloonweb.access.actors import Actor
from domains import host_registry, maintenance, services
from domains.models import Domain, Job
from hosts.models import Host
from hosts.units import format_mib, mib

WAIT_POLL_S = 0.2


def cli_actor(username: str | None) -> Actor:
    """Who a command acts as: the command line itself (full rights), or a BalloonWeb user with their rights. Either
    way the audit log says it was the command line, and which account on which machine ran it (in the entry's
    request id): `xm --user alice` is someone with a shell acting as alice, not alice at the console."""
    origin = {"request_id": f"cli:{_os_user()}@{socket.gethostname()}"[:64]}
    if not username:
        return Actor.command_line(**origin)
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise services.NotFound(f"no active user named {username}")
    return Actor("cli", user.get_username(), user, origin)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container without a passwd entry)
        return f"uid {os.getuid()}"



def seconds(text: str) -> float:
    """--timeout: a finite, positive number of seconds (nan or inf would wait for ever)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value

class Command(BaseCommand):
    help = "Xen's xm on BalloonWeb: list, mem-set, mem-max, create, migrate, maintenance; host-list, host-add, host-set, host-remove."

    def add_arguments(self, parser):
        parser.add_argument("--user", help="act as this BalloonWeb user (default: the command line, with full rights)")
        commands = parser.add_subparsers(dest="subcommand", required=True)

        listing = commands.add_parser("list", help="domains as last observed")
        listing.add_argument("domains", nargs="*")
        listing.add_argument("--host")

        mem_set = commands.add_parser("mem-set", help="balloon a running domain to MEM (512, 512M, 4G, 524288K)")
        mem_set.add_argument("domain")
        mem_set.add_argument("memory")

        mem_max = commands.add_parser("mem-max", help="set maxmem in the persistent config (next boot)")
        mem_max.add_argument("domain")
        mem_max.add_argument("memory")

        create = commands.add_parser("create", help="define and start a domain from a Xen-style config file")
        create.add_argument("config_file")

        migrate = commands.add_parser("migrate", help="live-migrate a domain to another host")
        migrate.add_argument("domain")
        migrate.add_argument("destination")
        migrate.add_argument("-l", "--live", action="store_true", help="accepted for xm compatibility; migration is always live")

        # xm's names: start, shutdown, destroy (at once), reboot (here a restart with the persistent config).
        power_commands = {
            "start": "start a domain that is not running, with its persistent config",
            "shutdown": "ask a running domain's guest to shut down (--force: at once)",
            "destroy": "turn a running domain off at once, without asking its guest",
            "reboot": "shut a running domain down, then start it with its persistent config (how it takes a new maxmem)",
        }
        powers = []
        for name, what in power_commands.items():
            powers.append(commands.add_parser(name, help=what))
            powers[-1].add_argument("domain")
            if name in ("shutdown", "reboot"):
                powers[-1].add_argument("--force", action="store_true", help="turn it off at once, without asking the guest")

        service = commands.add_parser(
            "maintenance", help="on: take a host out of service and migrate its running domains away; off: end it"
        )
        service.add_argument("host_name", metavar="host")
        service.add_argument("state", choices=["on", "off"])

        follow = commands.add_parser("job", help="a job's state and log (one left by --no-wait, Ctrl-C or a timeout); "
                                     "exit 1 if it failed or was cancelled")
        follow.add_argument("job_id", type=int)
        follow.add_argument("--wait", action="store_true", help="wait for it to end, as the command that made it would have")
        follow.add_argument("--timeout", type=seconds, default=900.0, help="seconds to wait for the job")

        commands.add_parser("host-list", help="the hosts you can see, with their memory")
        host_add = commands.add_parser("host-add", help="register a hypervisor (superusers)")
        host_add.add_argument("host_name", metavar="name")
        host_add.add_argument("uri", help="qemu:///system, qemu+ssh://root@hv3/system, xen+ssh://root@hv3/")
        host_set = commands.add_parser("host-set", help="change a host's reserve or capacity (its admins), team or queue group (superusers)")
        host_set.add_argument("host_name", metavar="host")
        for sub in (host_add, host_set):
            sub.add_argument("--team", help="a team's name or id ('' for none)")
            sub.add_argument("--reserve", dest="reserved", help="memory the host keeps for itself: 512, 1G, 0")
            sub.add_argument("--capacity", help="what it hands out in all, reserve included ('' for all it reports)")
            sub.add_argument("--queue-group", dest="queue_group", help="its jobs and polls go to jobs.GROUP and poll.GROUP")
        host_remove = commands.add_parser("host-remove", help="forget a host that runs nothing (superusers)")
        host_remove.add_argument("host_name", metavar="host")

        for sub in (mem_set, mem_max, create, migrate, *powers):
            sub.add_argument("--host", required=sub is create, help="the host the domain is on (create: where to start it)")
        for sub in commands.choices.values():
            # Also after the command (`xm mem-set foo 512 --user alice`), as `jobs cancel ID --user NAME` takes it.
            sub.add_argument("--user", default=argparse.SUPPRESS, help="act as this BalloonWeb user")
        for sub in (mem_set, mem_max, create, migrate, service, *powers):
            sub.add_argument("--no-wait", action="store_true", help="print the job id instead of waiting")
            sub.add_argument("--timeout", type=seconds, default=900.0, help="seconds to wait for the job")

    def handle(self, *args, subcommand, user=None, **options):
        try:
            actor = cli_actor(user)
            if subcommand == "list":
                return self.list(actor, options["domains"], options["host"])
            if subcommand == "maintenance":
                return self.maintenance(actor, options)
            if subcommand == "job":
                return self.job(actor, options)
            if subcommand.startswith("host-"):
                return self.hosts(actor, subcommand, options)
            job = self.request(actor, subcommand, options)
            if options["no_wait"]:
                self.stdout.write(str(job.pk))
                return
            self.wait(job, options["timeout"])
        except services.ServiceError as exc:
            self.fail(exc.message)

    def fail(self, message: str) -> None:
        self.stderr.write(f"xm: {message}")
        sys.exit(1)

    def request(self, actor: Actor, subcommand: str, options: dict) -> Job:
        host_name = options.get("host")
        if subcommand == "create":
            path = Path(options["config_file"])
            try:
                text = path.read_text()
            except OSError as exc:
                self.fail(f"cannot read {path}: {exc.strerror}")
            except UnicodeDecodeError:
                self.fail(f"{path} is not a text file: give a Xen config file (name = \"foo\", memory = 512, ...)")
            return services.request_create(actor, services.find_host(actor, host_name), text)
        domain = services.find_domain(actor, options["domain"], host_name)
        if subcommand == "mem-set":
            return services.request_resize(actor, domain, options["memory"])
        if subcommand == "mem-max":
            return services.request_set_maxmem(actor, domain, options["memory"])
        if subcommand in ("start", "shutdown", "destroy", "reboot"):
            action = {"destroy": "shutdown", "reboot": "restart"}.get(subcommand, subcommand)
            booted = domain.config_memory_kib
            if subcommand == "reboot" and domain.is_running and booted and booted != domain.memory_kib:
                # As in Xen, a boot takes the config's memory: a live mem-set does not survive it.
                self.stderr.write(f"xm: {domain.name} boots with {format_mib(booted)} from its config (it has "
                                  f"{format_mib(domain.memory_kib)} now; xm mem-set after the boot changes it)")
            force = subcommand == "destroy" or options.get("force", False)
            return services.request_power(actor, domain, action, force=force)
        return services.request_migrate(actor, domain, services.find_host(actor, options["destination"]))

    def hosts(self, actor: Actor, subcommand: str, options: dict) -> None:
        settings = {k: options[k] for k in host_registry.SETTINGS if options.get(k) is not None}
        if subcommand == "host-list":
            self.stdout.write(f"{'Name':<16}{'Status':<9}{'Team':<12}{'Usable(MiB)':>12}{'Reserve(MiB)':>13}{'Running(MiB)':>13}  URI")
            hosts = rules.restrict(Host.objects.select_related("team"), actor, "view").order_by("name")
            running = dict(Domain.objects.running().values_list("host_id").annotate(models.Sum("memory_kib")))
            for host in hosts:
                state = "maint" if host.maintenance else host.status
                self.stdout.write(
                    f"{host.name:<16}{state:<9}{(host.team.name if host.team else '-'):<12}{mib(host.usable_kib):>12}"
                    f"{mib(host.reserved_kib):>13}{mib(running.get(host.pk, 0)):>13}  {host.uri}"
                )
        elif subcommand == "host-add":
            host = host_registry.add_host(actor, options["host_name"], options["uri"], **settings)
            self.stdout.write(f"{host.name} added; BalloonWeb connects to it at its next poll")
        elif subcommand == "host-set":
            host = host_registry.change_host(actor, services.find_host(actor, options["host_name"]), **settings)
            self.stdout.write(f"{host.name}: reserve {format_mib(host.reserved_kib)}, usable {format_mib(host.usable_kib)}, "
                              f"team {host.team.name if host.team else 'none'}, queue group {host.queue_group or 'default'}")
        else:
            self.stdout.write(host_registry.remove_host(actor, services.find_host(actor, options["host_name"])))

    def maintenance(self, actor: Actor, options: dict) -> None:
        host = services.find_host(actor, options["host_name"])
        if options["state"] == "off":
            maintenance.end(actor, host)
            self.stdout.write(f"{host.name} takes domains again")
            return
        done = maintenance.start(actor, host)
        for domain, reason in done.staying:
            self.stderr.write(f"xm: {domain.name} stays on {host.name}: {reason}")
        for domain, destination in done.moving:
            self.stdout.write(f"{domain.name} is already on its way to {destination}")
        if options["no_wait"]:
            if done.jobs:
                self.stdout.write(" ".join(str(job.pk) for job in done.jobs))
            return  # the moves are queued; xm job ID follows each
        # The moves already on their way (the autoscaler's, someone's) are waited for as well, and so are the
        # moves and boots coming in that began before maintenance did (those still queued are cancelled).
        on_their_way = Job.objects.filter(kind=Job.Kind.MIGRATE, state__in=Job.UNFINISHED, domain__in=[d for d, _ in done.moving])
        coming_in = Job.objects.filter(kind__in=Job.ARRIVING, state__in=Job.UNFINISHED, target_host=host).exclude(host=host, kind=Job.Kind.MIGRATE)
        moves = [*done.jobs, *on_their_way]
        failed = [job for job in moves if not self.wait(job, options["timeout"], exit_on_failure=False)]
        for job in coming_in.exclude(pk__in=[job.pk for job in moves]):
            # However they end (cancelled for the maintenance, or landed), whether the host is empty is said below.
            self.wait(job, options["timeout"], exit_on_failure=False)
        self.stdout.write(f"{host.name} is in maintenance: {len(moves) - len(failed)} domain(s) moved, {len(done.staying)} stayed")
        # As `xe host-evacuate`: not done while a guest still runs there (a script would power the host off).
        still_running = sorted(Domain.objects.running().filter(host=host).values_list("name", flat=True))
        if failed:
            self.stderr.write(f"xm: {len(failed)} migration(s) did not end well: jobs {', '.join(str(job.pk) for job in failed)}")
        if still_running or failed:
            self.fail(f"{host.name} still runs {', '.join(still_running) or 'what did not move'}: it is in maintenance but not empty")

    def job(self, actor: Actor, options: dict) -> None:
        job = rules.restrict(Job.objects.select_related("domain", "host", "target_host"), actor, "view").filter(pk=options["job_id"]).first()
        if job is None:
            raise services.NotFound(f"no job {options['job_id']}")
        if options["wait"]:
            self.wait(job, options["timeout"])
            return
        what = job.domain.name if job.domain else job.params.get("name", "")
        self.stdout.write(f"job {job.pk}: {job.kind} {what} on {job.host.name}: {job.state}"
                          + (f", {job.progress} %" if job.state == Job.State.RUNNING else ""))
        for line in job.log.strip().splitlines():
            self.stdout.write(f"  {line}")
        if job.state in (Job.State.FAILED, Job.State.CANCELLED):
            self.fail(f"job {job.pk} {job.state}: {job.error or 'no reason given'}")

    def wait(self, job: Job, timeout: float, *, exit_on_failure: bool = True) -> bool:
        """Wait for the job to end and say how; a job that did not succeed exits 1, or returns False."""
        deadline = time.monotonic() + timeout
        try:
            while not job.is_finished:
                if time.monotonic() > deadline:
                    self.fail(f"job {job.pk} is still {job.state} after {timeout:.0f} s (is a worker running?); "
                              f"xm job {job.pk} --wait follows it")
                time.sleep(WAIT_POLL_S)
                job.refresh_from_db()
        except KeyboardInterrupt:
            # Only the waiting stops: the job is the worker's. Say how to stop it too.
            self.fail(f"no longer waiting; job {job.pk} goes on (xm job {job.pk} says how it ends; manage.py jobs cancel "
                      f"{job.pk} cancels it, or stops a migration)")
        if job.state != Job.State.SUCCEEDED:
            if exit_on_failure:
                self.fail(f"job {job.pk} {job.state}: {job.error or 'no reason given'}")
            self.stderr.write(f"xm: job {job.pk} {job.state}: {job.error or 'no reason given'}")
            return False
        last_line = job.log.strip().splitlines()[-1] if job.log.strip() else "done"
        self.stdout.write(f"{last_line.split(' ', 1)[-1]} (job {job.pk})")
        return True

    def list(self, actor: Actor, names: list[str], host_name: str | None) -> None:
        domains = rules.restrict(Domain.objects.present().select_related("host"), actor, "view")
        if host_name:
            domains = domains.filter(host=services.find_host(actor, host_name))
        if names:
            domains = domains.filter(name__in=names)
            # As xm: naming a domain that is not there is an error (scripts test for a domain this way).
            missing = sorted(set(names) - set(domains.values_list("name", flat=True)))
        header = f"{'Name':<24}{'ID':>5}{'Mem(MiB)':>10}{'VCPUs':>6}  {'State':<8}{'Time(s)':>10}{'MaxMem(MiB)':>13}  Host"
        self.stdout.write(header)
        silent_hosts = {}
        for d in domains.order_by("host__name", "name"):
            hv_id = "" if d.hv_id is None else str(d.hv_id)
            host = d.host.name
            if not d.host.is_online:
                silent_hosts[d.host.pk] = d.host
                host += " (last seen)"
            self.stdout.write(
                f"{d.name:<24}{hv_id:>5}{d.memory_kib // 1024:>10}{d.vcpus:>6}  {d.xen_state:<8}"
                f"{d.cpu_time_ns / 1e9:>10.1f}{d.maxmem_kib // 1024:>13}  {host}"
            )
        # Rows of a host that does not answer are what was last seen there, not what runs there now.
        for host in silent_hosts.values():
            seen = f"last answered {host.last_seen:%Y-%m-%d %H:%M:%S} UTC" if host.last_seen else "never answered"
            self.stderr.write(f"xm: {host.name} is {host.status} ({host.last_error or 'no error recorded'}); {seen}")
        if names and missing:
            where = f" on host {host_name}" if host_name else ""
            self.fail(f"no domain named {', '.join(missing)}{where}")
