from django.core.management.base import BaseCommand, CommandError

from hosts.lab import setup


class Command(BaseCommand):
    help = "The QEMU lab: two libvirtd hosts (lab1, lab2) with a real guest each, ballooned and migrated for real."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        up = actions.add_parser("up", help="install what is missing, build the guest once, start hosts and guests, register them")
        up.add_argument("--demand", help="the guests' memory schedule, SECONDS:MIB,... (default: a spike and a swing)")
        up.add_argument("--no-install", action="store_true", help="do not run apt-get")
        down = actions.add_parser("down", help="stop everything `up` started, remove what it made, unregister the hosts")
        down.add_argument("--purge", action="store_true", help="also remove the cached guest (kernel and initramfs)")
        actions.add_parser("status", help="the guests and their memory as the guests themselves report it")

    def handle(self, *args, action, **options):
        try:
            getattr(self, f"do_{action}")(**options)
        except (RuntimeError, OSError, TimeoutError) as exc:
            raise CommandError(str(exc)) from exc

    def say(self, line: str) -> None:
        self.stdout.write(line)

    def do_up(self, demand, no_install, **_):
        for host in setup.up(demand=demand, install=not no_install, say=self.say):
            self.stdout.write(f"{host.name} {host.uri}")

    def do_down(self, purge, **_):
        setup.down(purge=purge, say=self.say)

    def do_status(self, **_):
        rows = setup.status()
        if not rows:
            self.stdout.write("the lab is not running (python manage.py lab up)")
            return
        self.stdout.write(
            f"{'Guest':<8} {'Host':<5} {'State':<8} {'Balloon':>8} {'MemTotal':>9} {'MemAvail':>9} "
            f"{'Demand':>7} {'Held':>5} {'Uptime':>8}  Reported"
        )
        for row in rows:
            r = row.report
            if r is None:
                self.stdout.write(f"{row.name:<8} {row.host:<5} {row.state:<8} {row.balloon_kib // 1024:>5} MiB  (no report from the guest yet)")
                continue
            self.stdout.write(
                f"{row.name:<8} {row.host:<5} {row.state:<8} {row.balloon_kib // 1024:>5} MiB {r.memtotal_kib // 1024:>5} MiB "
                f"{r.memavailable_kib // 1024:>5} MiB {r.demand_mib:>3} MiB {r.held_mib:>3} MiB {r.uptime_s:>7.0f}s  "
                f"{row.report_age_s:.0f} s ago"
            )
