from django.core.management.base import BaseCommand

from domains import jobs


class Command(BaseCommand):
    help = "Jobs: `sweep` finishes what dead workers left and re-sends queued jobs whose message was lost."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["sweep"])

    def handle(self, *args, action, **options):
        counts = jobs.sweep()
        self.stdout.write(
            f"{counts['requeued']} requeued, {counts['resent']} re-sent, {counts['succeeded']} found done, {counts['failed']} failed"
        )
