import signal
import threading

from django.core.management.base import BaseCommand

from domains.events import follow_events


class Command(BaseCommand):
    help = "Follow libvirt's balloon and lifecycle events of every (non-simulated) host and publish them live."

    def handle(self, *args, **options):
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        follow_events(stop)
