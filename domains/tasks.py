"""Celery tasks: thin wrappers; the work is in domains.jobs and domains.poller."""

from celery import current_app, shared_task
from django.conf import settings

from . import jobs, poller, samples

BUSY_RETRY_S = 0.5


@shared_task(bind=True, acks_late=True, max_retries=None, time_limit=settings.MIGRATE_TIME_LIMIT + 30)
def run_job(self, job_id: int) -> str:
    outcome = jobs.run_job(job_id, worker=self.request.hostname or "")
    if outcome == jobs.Claim.BUSY:
        raise self.retry(countdown=BUSY_RETRY_S)
    return outcome


@shared_task(ignore_result=True, expires=settings.POLL_INTERVAL)
def poll_fleet() -> list[str]:
    return poller.dispatch_polls()


@shared_task(ignore_result=True, expires=settings.POLL_INTERVAL)
def poll_group(queue_group: str) -> dict:
    report = poller.poll_fleet(queue_group).as_dict()
    # The autoscaler plans over what this poll just wrote; the polls of several groups make one run (claim_run).
    current_app.send_task("domains.autoscaler.tasks.autoscale")
    return report


@shared_task(ignore_result=True, expires=settings.SWEEP_INTERVAL)
def sweep_jobs() -> list[str]:
    return jobs.dispatch_sweeps()


@shared_task(ignore_result=True, expires=settings.SWEEP_INTERVAL)
def sweep_group(queue_group: str) -> dict:
    return jobs.sweep(queue_group)


@shared_task(ignore_result=True, expires=60)
def compact_samples() -> dict:
    return samples.compact()
