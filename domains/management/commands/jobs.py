import sys

from django.core.management.base import BaseCommand

from balloonweb.access import rules
from domains import jobs, services
from domains.models import Job

from .xm import cli_actor


class Command(BaseCommand):
    help = (
        "Jobs: `sweep` finishes what dead workers left and re-sends queued jobs whose message was lost; "
        "`cancel ID` cancels a queued job or stops a running migration."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["sweep", "cancel"])
        parser.add_argument("job_id", nargs="?", type=int, help="cancel: the job's id")
        parser.add_argument("--user", help="cancel: act as this BalloonWeb user (default: the command line, with full rights)")

    def handle(self, *args, action, job_id=None, user=None, **options):
        if action == "cancel":
            return self.cancel(job_id, user)
        counts = jobs.sweep()
        self.stdout.write(
            f"{counts['requeued']} requeued, {counts['resent']} re-sent, {counts['succeeded']} found done, {counts['failed']} failed, "
            f"{counts['waiting']} waiting for their destination to answer"
        )

    def cancel(self, job_id: int | None, username: str | None) -> None:
        try:
            if job_id is None:
                raise services.BadRequest("say which job: jobs cancel ID", "invalid")
            actor = cli_actor(username)
            job = rules.restrict(Job.objects.all(), actor, "view").filter(pk=job_id).first()
            if job is None:
                raise services.NotFound(f"no job {job_id}")
            job = services.cancel_job(actor, job)
        except services.ServiceError as exc:
            self.stderr.write(f"jobs: {exc.message}")
            sys.exit(1)
        if job.state == Job.State.RUNNING:
            self.stdout.write(f"job {job.pk} asked to stop: the migration is aborted at the worker's next check")
        else:
            self.stdout.write(f"job {job.pk} cancelled")
