from django.core.management.base import BaseCommand, CommandError

from hosts.simulation import fleet, setup


class Command(BaseCommand):
    help = "Simulated hosts: a private libvirtd serving libvirt's test driver per host."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        start = actions.add_parser("start", help="start a simulated host and register it")
        start.add_argument("name")
        start.add_argument("--memory", type=int, default=setup.DEFAULT_MEMORY_MIB, help="host memory, MiB")
        start.add_argument("--reserve", type=int, default=setup.DEFAULT_RESERVE_MIB, help="memory kept for the host, MiB")
        start.add_argument("--cpus", type=int, default=setup.DEFAULT_CPUS)
        stop = actions.add_parser("stop", help="stop a simulated host (its Host row stays, offline)")
        stop.add_argument("name", nargs="?")
        stop.add_argument("--all", action="store_true")
        actions.add_parser("list", help="NAME URI of each simulated host")
        actions.add_parser("demo", help="hv1 and hv2 with foo and a few other domains")

    def handle(self, *args, action, **options):
        try:
            getattr(self, f"do_{action}")(**options)
        except (RuntimeError, ValueError, OSError) as exc:
            raise CommandError(str(exc)) from exc

    def do_start(self, name, memory, reserve, cpus, **_):
        host = setup.start(name, memory_mib=memory, reserve_mib=reserve, cpus=cpus)
        self.stdout.write(f"{host.name} {host.uri}")

    def do_stop(self, name, all, **_):
        if all:
            for stopped in setup.stop_all():
                self.stdout.write(f"stopped {stopped}")
            return
        if not name:
            raise CommandError("name a host, or --all")
        if not fleet.simhost(name).directory.exists():
            raise CommandError(f"no simulated host named {name}")
        setup.stop(name)
        self.stdout.write(f"stopped {name}")

    def do_list(self, **_):
        for sim in fleet.all_simhosts():
            state = "" if sim.running else " (stopped)"
            self.stdout.write(f"{sim.name} {sim.uri}{state}")

    def do_demo(self, **_):
        for host in setup.start_demo():
            self.stdout.write(f"{host.name} {host.uri}")
